import Reactor

/// Server-Sent Events (agent-http-api.md): `/api/realtime/events` (the event bus, with replay
/// from `Last-Event-ID` out of the bus's ring) and `/api/realtime/logs` (the agent's own log
/// lines, or a pod's log with `?namespace=&pod=`). `: keepalive` every 15 s. A client that stops
/// reading is cut off once `maxQueuedBytes` wait for it, never buffered without limit.
final class RealtimeRoutes {
    static let keepAlive: TimeAmount = .seconds(15)
    static let maxQueuedBytes = 1 << 20
    /// Agent log lines a new log stream starts with.
    static let logTail = 50

    unowned let agent: Agent
    let bus: EventBus
    let clients: RealtimeClients
    let logs: LogStream?

    init(agent: Agent, bus: EventBus, clients: RealtimeClients, logs: LogStream?) {
        self.agent = agent
        self.bus = bus
        self.clients = clients
        self.logs = logs
    }

    func install(on router: HTTPRouter) {
        router.add("GET", "/api/realtime/events") { [weak self] req, res in self?.events(req, res) }
        router.add("GET", "/api/realtime/logs") { [weak self] req, res in self?.logStream(req, res) }
    }

    // MARK: Events

    private func events(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let lastSeen = (request.header("Last-Event-ID") ?? request.queryParameter("last_event_id")).flatMap { UInt64($0.trimmingSpaces) }
        guard clients.open(.eventStream) else {
            responder.sendError(503, "too many realtime clients (realtime.max_connections \(clients.limit))")
            return
        }
        let sse = SSEStream(responder: responder, keepAlive: Self.keepAlive, retry: 2000)
        var replay: [AgentEvent] = []
        var complete = true
        if let lastSeen { (replay, complete) = bus.events(after: lastSeen) }
        sse.send(SSEEvent(event: "connected", data: JSONValue.object([
            "agent_id": .string(agent.state.agentID), "last_event_id": .int(bus.lastID),
            "replayed": .int(replay.count), "missed_events_lost": .bool(!complete),
        ]).text()))
        for e in replay { send(e, to: sse) }
        let subscription = bus.subscribe { [weak self, weak sse] e in
            guard let self, let sse else { return }
            self.send(e, to: sse)
        }
        sse.onClose = { [weak self] in
            guard let self else { return }
            self.bus.unsubscribe(subscription)
            self.clients.close(.eventStream)
        }
        // The stream keeps itself through the connection until it closes.
        retain(sse)
    }

    private func send(_ e: AgentEvent, to sse: SSEStream) {
        guard sse.isOpen else { return }
        sse.send(SSEEvent(id: String(e.id), event: e.name, data: e.dataJSON))
        cutIfSlow(sse)
    }

    // MARK: Logs

    private func logStream(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let namespace = request.queryParameter("namespace"), pod = request.queryParameter("pod")
        if namespace != nil || pod != nil {
            podLogStream(request, responder, namespace: namespace ?? "", pod: pod ?? "")
            return
        }
        guard let logs else {
            responder.sendError(503, "the agent's log is not being captured in this process")
            return
        }
        guard clients.open(.eventStream) else {
            responder.sendError(503, "too many realtime clients (realtime.max_connections \(clients.limit))")
            return
        }
        let sse = SSEStream(responder: responder, keepAlive: Self.keepAlive, retry: 2000)
        sse.send(SSEEvent(event: "connected", data: #"{"source":"agent"}"#))
        for r in logs.recent(Self.logTail) { sendLog(r, to: sse) }
        let id = logs.addListener { [weak self, weak sse] records in
            guard let self, let sse else { return }
            for r in records { self.sendLog(r, to: sse) }
        }
        sse.onClose = { [weak self, weak logs] in
            logs?.removeListener(id)
            self?.clients.close(.eventStream)
        }
        retain(sse)
    }

    private func sendLog(_ r: LogRecord, to sse: SSEStream) {
        guard sse.isOpen else { return }
        sse.send(SSEEvent(id: String(r.sequence), event: "log", data: LogRecordJSON.json(r).text()))
        cutIfSlow(sse)
    }

    private func podLogStream(_ request: HTTPRequest, _ responder: HTTPResponder, namespace: String, pod: String) {
        guard !namespace.isEmpty, !pod.isEmpty else {
            responder.sendError(400, "a pod's log needs both namespace and pod")
            return
        }
        guard let follow = agent.followPodLog else {
            responder.sendError(503, "pod logs need a Kubernetes client, and none is configured")
            return
        }
        guard clients.open(.eventStream) else {
            responder.sendError(503, "too many realtime clients (realtime.max_connections \(clients.limit))")
            return
        }
        var req = PodLogRequest(namespace: namespace, pod: pod)
        if let c = request.queryParameter("container"), !c.isEmpty { req.container = c }
        req.tailLines = request.queryParameter("tail_lines").flatMap { Int($0) }
        let sse = SSEStream(responder: responder, keepAlive: Self.keepAlive)
        sse.send(SSEEvent(event: "connected", data: JSONValue.object(["source": .string("pod"), "namespace": .string(namespace),
                                                                     "pod": .string(pod)]).text()))
        var sequence: UInt64 = 0
        let cancel = follow(req, { [weak self, weak sse] line in
            guard let self, let sse, sse.isOpen else { return }
            sequence &+= 1
            sse.send(SSEEvent(id: String(sequence), event: "log", data: JSONValue.object([
                "source": .string("pod"), "namespace": .string(namespace), "pod": .string(pod),
                "container": req.container.map { .string($0) } ?? .null, "line": .string(line)]).text()))
            self.cutIfSlow(sse)
        }, { [weak sse] reason in
            guard let sse, sse.isOpen else { return }
            sse.send(SSEEvent(event: "logs_end", data: JSONValue.object(["namespace": .string(namespace), "pod": .string(pod),
                                                                         "reason": .string(reason)]).text()))
            sse.finish()
        })
        sse.onClose = { [weak self] in
            cancel()
            self?.clients.close(.eventStream)
        }
        retain(sse)
    }

    // MARK: Slow clients and lifetime

    private func cutIfSlow(_ sse: SSEStream) {
        guard sse.response.queuedBytes > Self.maxQueuedBytes else { return }
        agent.logger.warning("realtime: closing an event stream whose client does not read",
                             metadata: ["queued": "\(sse.response.queuedBytes)"])
        sse.response.abort()
    }

    private var open: [ObjectIdentifier: SSEStream] = [:]

    /// Streams live until their connection ends; the table holds them until then.
    private func retain(_ sse: SSEStream) {
        let key = ObjectIdentifier(sse)
        open[key] = sse
        let previous = sse.onClose
        sse.onClose = { [weak self] in
            previous?()
            self?.open.removeValue(forKey: key)
        }
    }
}
