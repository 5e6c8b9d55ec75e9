/// The WebSocket and SSE clients the agent serves, counted together against
/// `realtime.max_connections` (agent-http-api.md: then `503`).
final class RealtimeClients {
    let limit: Int
    private(set) var webSockets = 0
    private(set) var eventStreams = 0

    enum Kind { case webSocket, eventStream }

    init(limit: Int) { self.limit = limit }

    var total: Int { webSockets + eventStreams }

    /// Takes a place, or says no when all are taken.
    func open(_ kind: Kind) -> Bool {
        guard total < limit else { return false }
        switch kind {
        case .webSocket: webSockets += 1
        case .eventStream: eventStreams += 1
        }
        return true
    }

    func close(_ kind: Kind) {
        switch kind {
        case .webSocket: webSockets = max(0, webSockets - 1)
        case .eventStream: eventStreams = max(0, eventStreams - 1)
        }
    }
}
