import CShims
import Reactor

/// The WebSocket hub at `/ws` (agent-http-api.md): one JSON object per text frame,
/// `{"type","id"?,"timestamp","data"}`.
///
/// * On connect the client gets `status`. Commands: `ping` → `pong`, `get_status` → `status`,
///   `get_metrics` → `metrics`, `subscribe`/`unsubscribe` `{"topics":[…]}` to `events` (every
///   event-bus event as an `event` message), `metrics` (a `metrics` message every 5 s) and
///   `logs` (the agent's own log lines as `log` messages), and `logs {"namespace","pod",…}` /
///   `logs_stop` for a pod's log. An `id` in a command is echoed in its answer.
/// * Unknown type or invalid JSON: an `error` message; the connection stays. A message over
///   64 KiB: close 1009 (the frame decoder's limit).
/// * Pings every third of `silenceLimit`; a client silent (no frame, no pong) for `silenceLimit`
///   is closed. A client whose unsent queue passes `maxQueuedBytes` gets nothing more and is
///   closed with 1008; what it had queued is freed when the close completes or times out.
final class RealtimeHub {
    enum Topic: String, CaseIterable { case events, metrics, logs }

    static let maxMessageSize = 64 * 1024
    static let maxQueuedBytes = 1 << 20
    static let metricsInterval: TimeAmount = .seconds(5)

    unowned let loop: EventLoop
    let bus: EventBus
    let clients: RealtimeClients
    let silenceLimit: TimeAmount
    /// The snapshot for `status`, and the body of `metrics`.
    let status: () -> JSONValue
    let metrics: () -> JSONValue
    /// Follows a pod's log, when a Kubernetes client exists: calls `onLine` per line and `onEnd`
    /// once with the reason; returns a cancel function. nil: no client (the command answers why).
    var followPodLog: ((PodLogRequest, _ onLine: @escaping (String) -> Void, _ onEnd: @escaping (String) -> Void) -> (() -> Void))?
    /// Told when the number of clients subscribed to `logs` goes from 0 to 1 or back.
    var onLogListeners: ((Bool) -> Void)?

    private var connections: [ObjectIdentifier: HubClient] = [:]
    private var subscription: EventBus.Subscription?
    private var metricsTimer: LoopTimer?
    private var pingTimer: LoopTimer?

    init(loop: EventLoop, bus: EventBus, clients: RealtimeClients, silenceLimit: TimeAmount,
         status: @escaping () -> JSONValue, metrics: @escaping () -> JSONValue) {
        self.loop = loop
        self.bus = bus
        self.clients = clients
        self.silenceLimit = silenceLimit
        self.status = status
        self.metrics = metrics
    }

    var connectionCount: Int { connections.count }

    /// `GET /ws`.
    func accept(_ request: HTTPRequest, _ responder: HTTPResponder) {
        guard clients.open(.webSocket) else {
            responder.sendError(503, "too many realtime clients (realtime.max_connections \(clients.limit))")
            return
        }
        let upgraded = WebSocketServerUpgrade.upgrade(request, responder, maxMessageSize: Self.maxMessageSize) { [weak self] ws in
            guard let self else { ws.close(code: 1001); return }
            let client = HubClient(hub: self, ws: ws, peer: request.peer)
            self.connections[ObjectIdentifier(client)] = client
            ws.onText = { [weak client] text in client?.received(text) }
            ws.onBinary = { [weak client] _ in client?.sendError("binary frames are not understood; send JSON text", id: nil) }
            ws.onClose = { [weak self, weak client] _, _, _ in
                guard let self, let client else { return }
                self.disconnected(client)
            }
            self.ensureTimers()
            client.send("status", data: self.status())
        }
        if !upgraded { clients.close(.webSocket) }
    }

    /// Closes every client (the agent is stopping).
    func shutdown() {
        for c in Array(connections.values) { c.ws.close(code: 1001, reason: "agent shutting down") }
        metricsTimer?.cancel()
        pingTimer?.cancel()
    }

    // MARK: Fan-out

    /// Every event goes to the subscribers of `events`, encoded once.
    private func publish(_ e: AgentEvent) {
        let listeners = connections.values.filter { $0.topics.contains(.events) }
        guard !listeners.isEmpty else { return }
        let text = Self.message(type: "event", id: nil, timestamp: e.timestamp,
                                dataJSON: "{\"id\":\(e.id),\"event\":\(JSONText.quoted(e.name)),\"timestamp\":\"\(e.timestamp)\",\"data\":\(e.dataJSON)}")
        for c in listeners { c.sendRaw(text) }
    }

    /// Agent log lines for the subscribers of `logs`.
    func deliver(logs records: [LogRecord]) {
        let listeners = connections.values.filter { $0.topics.contains(.logs) }
        guard !listeners.isEmpty else { return }
        for r in records {
            let text = Self.message(type: "log", id: nil, timestamp: Timestamp.rfc3339(nanoseconds: r.time),
                                    dataJSON: LogRecordJSON.json(r).text())
            for c in listeners { c.sendRaw(text) }
        }
    }

    /// A fresh `status` to every client (the cluster changed), encoded once.
    func pushStatus() {
        guard !connections.isEmpty else { return }
        let text = Self.message(type: "status", id: nil, timestamp: Self.now(), dataJSON: status().text())
        for c in connections.values { c.sendRaw(text) }
    }

    private func pushMetrics() {
        let listeners = connections.values.filter { $0.topics.contains(.metrics) }
        guard !listeners.isEmpty else { return }
        let text = Self.message(type: "metrics", id: nil, timestamp: Self.now(), dataJSON: metrics().text())
        for c in listeners { c.sendRaw(text) }
    }

    // MARK: Bookkeeping

    fileprivate func topicsChanged() {
        if connections.values.contains(where: { $0.topics.contains(.events) }) {
            if subscription == nil { subscription = bus.subscribe { [weak self] e in self?.publish(e) } }
        } else if let s = subscription {
            bus.unsubscribe(s)
            subscription = nil
        }
        onLogListeners?(connections.values.contains { $0.topics.contains(.logs) })
        ensureTimers()
    }

    private func ensureTimers() {
        let wantMetrics = connections.values.contains { $0.topics.contains(.metrics) }
        if wantMetrics && metricsTimer == nil {
            metricsTimer = loop.schedule(in: Self.metricsInterval) { [weak self] in self?.metricsTick() }
        } else if !wantMetrics {
            metricsTimer?.cancel()
            metricsTimer = nil
        }
        if !connections.isEmpty && pingTimer == nil {
            pingTimer = loop.schedule(in: pingInterval) { [weak self] in self?.pingTick() }
        } else if connections.isEmpty {
            pingTimer?.cancel()
            pingTimer = nil
        }
    }

    private var pingInterval: TimeAmount { .nanoseconds(max(silenceLimit.nanoseconds / 3, 1_000_000)) }

    private func metricsTick() {
        metricsTimer = nil
        pushMetrics()
        ensureTimers()
    }

    private func pingTick() {
        pingTimer = nil
        let now = loop.now
        for c in Array(connections.values) {
            if now - c.ws.lastReceived >= silenceLimit {
                c.closeForSilence()
            } else {
                c.ws.sendPing()
            }
        }
        ensureTimers()
    }

    fileprivate func disconnected(_ client: HubClient) {
        guard connections.removeValue(forKey: ObjectIdentifier(client)) != nil else { return }
        client.stopPodLog()
        clients.close(.webSocket)
        topicsChanged()
    }

    // MARK: Encoding

    static func now() -> String { Timestamp.rfc3339(nanoseconds: shim_realtime_ns()) }

    /// `{"type":…,"id":…,"timestamp":…,"data":…}` with `data` already encoded.
    static func message(type: String, id: String?, timestamp: String, dataJSON: String) -> String {
        var s = "{\"type\":"
        JSONText.appendQuoted(type, to: &s)
        if let id {
            s += ",\"id\":"
            JSONText.appendQuoted(id, to: &s)
        }
        s += ",\"timestamp\":\"\(timestamp)\",\"data\":"
        s += dataJSON
        s += "}"
        return s
    }
}

/// What the `logs` command asks for.
struct PodLogRequest: Equatable {
    var namespace: String
    var pod: String
    var container: String?
    var tailLines: Int?
}

/// One `/ws` client: its subscriptions, its pod log, and its send-queue limit.
final class HubClient {
    unowned let hub: RealtimeHub
    let ws: WebSocketConnection
    let peer: SocketAddress?
    fileprivate(set) var topics: Set<RealtimeHub.Topic> = []
    private var cancelPodLog: (() -> Void)?
    private var podLog: PodLogRequest?
    private var cutOff = false

    init(hub: RealtimeHub, ws: WebSocketConnection, peer: SocketAddress?) {
        self.hub = hub
        self.ws = ws
        self.peer = peer
    }

    // MARK: Sending

    func send(_ type: String, id: String? = nil, data: JSONValue) {
        sendRaw(RealtimeHub.message(type: type, id: id, timestamp: RealtimeHub.now(), dataJSON: data.text()))
    }

    func sendError(_ message: String, id: String?) {
        send("error", id: id, data: .object(["message": .string(message)]))
    }

    /// Sends, unless the client has stopped reading: past the queue limit it gets nothing more.
    func sendRaw(_ text: String) {
        guard !cutOff, ws.state == .open else { return }
        ws.sendText(text)
        if ws.queuedBytes > RealtimeHub.maxQueuedBytes {
            cutOff = true
            stopPodLog()
            ws.loop.logger.warning("realtime: closing a WebSocket client that does not read", metadata: [
                "peer": "\(peer.map { "\($0)" } ?? "-")", "queued": "\(ws.queuedBytes)"])
            ws.close(code: 1008, reason: "send queue over \(RealtimeHub.maxQueuedBytes) bytes: client too slow")
        }
    }

    func closeForSilence() {
        ws.close(code: 1001, reason: "no frame for \(hub.silenceLimit)")
    }

    // MARK: Commands

    func received(_ text: String) {
        let value: JSONValue
        do { value = try JSONParser.parse(text) } catch {
            sendError("invalid JSON: \(error)", id: nil)
            return
        }
        guard case .object = value, let fields = try? JSONFields(value) else {
            sendError("a message must be a JSON object with a \"type\"", id: nil)
            return
        }
        let id: String?
        switch fields["id"] {
        case .string(let s)?: id = s
        case .number(let n)?: id = n
        default: id = nil
        }
        guard case .string(let type)? = fields["type"] else {
            sendError("a message needs a \"type\" string", id: id)
            return
        }
        let data = (try? fields.optionalObject("data")) ?? nil
        switch type {
        case "ping":
            send("pong", id: id, data: .object([:]))
        case "get_status":
            send("status", id: id, data: hub.status())
        case "get_metrics":
            send("metrics", id: id, data: hub.metrics())
        case "subscribe", "unsubscribe":
            changeTopics(type == "subscribe", data: data, id: id)
        case "logs":
            followPodLog(data, id: id)
        case "logs_stop":
            let had = podLog
            stopPodLog()
            send("logs_end", id: id, data: .object(["namespace": had.map { .string($0.namespace) }, "pod": had.map { .string($0.pod) },
                                                    "reason": .string(had == nil ? "no log was being followed" : "stopped")]))
        default:
            sendError("unknown message type \(JSONText.quoted(type)); known: ping, get_status, get_metrics, subscribe, unsubscribe, logs, logs_stop", id: id)
        }
    }

    private func changeTopics(_ subscribe: Bool, data: JSONFields?, id: String?) {
        guard case .array(let items)? = data?["topics"] else {
            sendError("\(subscribe ? "subscribe" : "unsubscribe") needs data.topics, e.g. {\"topics\":[\"events\"]}", id: id)
            return
        }
        var named: [RealtimeHub.Topic] = []
        for item in items {
            guard case .string(let name) = item, let topic = RealtimeHub.Topic(rawValue: name) else {
                sendError("unknown topic \(item.text()); known: events, metrics, logs", id: id)
                return
            }
            named.append(topic)
        }
        if subscribe { topics.formUnion(named) } else { topics.subtract(named) }
        hub.topicsChanged()
        send(subscribe ? "subscribed" : "unsubscribed", id: id,
             data: .object(["topics": .array(topics.map(\.rawValue).sorted().map { .string($0) })]))
    }

    private func followPodLog(_ data: JSONFields?, id: String?) {
        guard let data, case .string(let namespace)? = data["namespace"], case .string(let pod)? = data["pod"],
              !namespace.isEmpty, !pod.isEmpty else {
            sendError("logs needs data.namespace and data.pod", id: id)
            return
        }
        guard let follow = hub.followPodLog else {
            sendError("pod logs need a Kubernetes client, and none is configured", id: id)
            return
        }
        var request = PodLogRequest(namespace: namespace, pod: pod)
        if case .string(let c)? = data["container"], !c.isEmpty { request.container = c }
        request.tailLines = (try? data.optionalInt("tail_lines")) ?? nil
        stopPodLog()
        podLog = request
        cancelPodLog = follow(request, { [weak self] line in
            self?.send("log", data: .object(["source": .string("pod"), "namespace": .string(request.namespace), "pod": .string(request.pod),
                                             "container": request.container.map { .string($0) } ?? .null, "line": .string(line)]))
        }, { [weak self] reason in
            guard let self, self.podLog == request else { return }
            self.podLog = nil
            self.cancelPodLog = nil
            self.send("logs_end", data: .object(["namespace": .string(request.namespace), "pod": .string(request.pod), "reason": .string(reason)]))
        })
    }

    func stopPodLog() {
        let cancel = cancelPodLog
        cancelPodLog = nil
        podLog = nil
        cancel?()
    }
}

/// An agent log record as the `log` message and SSE event carry it.
enum LogRecordJSON {
    static func json(_ r: LogRecord) -> JSONValue {
        .object([
            "source": .string("agent"), "level": .string(r.level), "component": .string(r.component),
            "message": .string(r.message), "timestamp": .string(Timestamp.rfc3339(nanoseconds: r.time)),
            "metadata": .object(r.metadata.map { JSONMember($0.key, .string($0.value)) }),
        ])
    }
}
