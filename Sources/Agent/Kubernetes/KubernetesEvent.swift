import Reactor

/// One cluster event (core/v1 `Event`) as the agent pushes it (`kubernetes_event` on the
/// WebSocket hub and SSE): what happened, to which object, how often.
public struct KubernetesEvent: Sendable, Equatable {
    /// `Normal` or `Warning`.
    public var type: String
    /// A short CamelCase cause: `Scheduled`, `BackOff`, `FailedMount`.
    public var reason: String
    public var message: String
    /// The object it is about, as `kind/name` (`Pod/web-1`).
    public var object: String
    public var namespace: String
    public var count: Int
    /// RFC 3339, the latest time it happened (empty when the server gave none).
    public var timestamp: String

    /// The `data` of a `kubernetes_event` message.
    public var json: JSONValue {
        .object(["type": .string(type), "reason": .string(reason), "message": .string(message),
                 "object": .string(object), "namespace": .string(namespace), "count": .int(count),
                 "timestamp": .string(timestamp)])
    }

    init(_ object: JSONFields) throws(JSONShapeError) {
        type = try object.optionalString("type") ?? "Normal"
        reason = try object.optionalString("reason") ?? ""
        message = try object.optionalString("message") ?? ""
        var involved = try object.optionalObject("involvedObject")
        if involved == nil { involved = try object.optionalObject("regarding") }
        let kind = try involved?.optionalString("kind") ?? ""
        let name = try involved?.optionalString("name") ?? ""
        self.object = kind.isEmpty ? name : "\(kind)/\(name)"
        var namespace = try involved?.optionalString("namespace")
        if namespace == nil { namespace = try object.optionalObject("metadata")?.optionalString("namespace") }
        self.namespace = namespace ?? ""
        count = try object.optionalInt("count") ?? 1
        var time: String?
        for key in ["lastTimestamp", "eventTime", "firstTimestamp"] where time == nil { time = try object.optionalString(key) }
        timestamp = time ?? ""
    }
}

/// The watch sink for events: nothing is kept; each event added or changed after the first
/// list goes to `onEvent` (events from before the agent started are history, not news).
final class EventFeed: WatchSink {
    var onEvent: ((KubernetesEvent) -> Void)?
    private(set) var delivered = 0
    private(set) var malformed = 0
    private var listed = false
    var wantsListItems: Bool { false }

    func beginList() {}
    func endList() { listed = true }

    func apply(_ type: WatchEventType, _ object: JSONValue) throws(JSONShapeError) {
        guard listed, type == .added || type == .modified else { return }
        let event = try KubernetesEvent(try JSONFields(object))
        delivered += 1
        onEvent?(event)
    }
}
