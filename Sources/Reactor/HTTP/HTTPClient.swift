/// An HTTP/1.1 client on the loop, with a keep-alive pool per origin, a deadline per request,
/// streaming bodies (a callback per chunk, for Kubernetes watches), proxies through CONNECT
/// (HTTPS_PROXY / HTTP_PROXY / NO_PROXY) and a pluggable connector for TCP and TLS.
///
/// Limits: at most `maxConnectionsPerOrigin` connections per origin (open or being dialled);
/// further requests wait for one in order, at most `maxWaitingPerOrigin` of them, each within
/// its own deadline. A response that stops arriving fails after `readIdleTimeout` without a
/// byte, whatever its overall deadline. Requests held or refused at the cap are counted and
/// logged at warning, once per `limitLogInterval`.
public final class HTTPClient {
    public unowned let loop: EventLoop
    public let connector: HTTPConnector
    public var proxies: HTTPProxySettings
    public var idleTimeout: TimeAmount = .seconds(30)
    public var maxIdlePerOrigin = 8
    public var connectTimeout: TimeAmount = .seconds(10)
    public var maxConnectionsPerOrigin = 16
    public var maxWaitingPerOrigin = 256
    /// No response byte for this long fails the request (zero: no limit). A request can set
    /// its own (`execute(readIdleTimeout:)`), e.g. a watch that may be silent for longer.
    public var readIdleTimeout: TimeAmount = .seconds(30)
    /// Who this client is in its limit log lines (the agent has one per peer).
    public var name = "http client"
    /// Read at the first hit: set it before the client is used.
    public var limitLogInterval: TimeAmount = .seconds(10)
    private var idle: [HTTPOrigin: [HTTPClientConnection]] = [:]
    private var active: [ObjectIdentifier: HTTPClientConnection] = [:]
    /// Connections per origin: open (busy or idle) or being dialled.
    private var connectionCounts: [HTTPOrigin: Int] = [:]
    /// Requests waiting for a connection, per origin, oldest first.
    private var waiting: [HTTPOrigin: [HTTPClientTask]] = [:]
    public private(set) var connectionsOpened = 0
    /// Requests that had to wait for a connection (the per-origin cap was reached).
    public private(set) var requestsQueued: UInt64 = 0
    /// Requests failed at once because too many were already waiting.
    public private(set) var requestsRefused: UInt64 = 0
    /// The origin of the latest request held or refused at the cap, for the log line.
    private var lastLimitedOrigin: HTTPOrigin?
    private lazy var limitLog = LimitHitLog(loop: loop, interval: limitLogInterval) { [unowned self] hits, interval in
        self.loop.logger.warning("\(self.name): per-origin connection limit reached", metadata: [
            "origin": "\(self.lastLimitedOrigin?.description ?? "-")", "limit": "\(self.maxConnectionsPerOrigin)",
            "max_waiting": "\(self.maxWaitingPerOrigin)", "hits": "\(hits)", "interval": "\(interval)",
            "queued_total": "\(self.requestsQueued)", "refused_total": "\(self.requestsRefused)"])
    }

    public init(loop: EventLoop, connector: HTTPConnector, proxies: HTTPProxySettings = .none) {
        self.loop = loop
        self.connector = connector
        self.proxies = proxies
    }


    /// Streams the response: `onHead` once, `onBody` per chunk, then `onComplete` with the
    /// trailers or the error. `timeout` covers connecting and the whole response (nil: none).
    /// `readIdleTimeout`: nil takes the client's.
    @discardableResult
    public func execute(_ request: HTTPClientRequest, timeout: TimeAmount?, readIdleTimeout: TimeAmount? = nil,
                        onHead: @escaping (HTTPResponseHead) -> Void,
                        onBody: @escaping ([UInt8]) -> Void,
                        onComplete: @escaping (Result<HTTPHeaders, HTTPError>) -> Void) -> HTTPClientTask {
        let task = HTTPClientTask(request: request, onHead: onHead, onBody: onBody, onComplete: onComplete)
        task.readIdleTimeout = readIdleTimeout ?? self.readIdleTimeout
        if let timeout {
            task.timer = loop.schedule(in: timeout) { [weak task] in
                guard let task else { return }
                let c = task.connection
                let phase: HTTPError.Phase = c.map { $0.hasResponseHead ? .readingBody : .waitingForResponse } ?? .connecting
                task.complete(.failure(.timedOut(phase: phase, after: timeout)))
                c?.abandon(.timedOut("request deadline"))
            }
        }
        start(task)
        return task
    }

    /// The whole response, body collected up to `maxBodyBytes`.
    @discardableResult
    public func fetch(_ request: HTTPClientRequest, timeout: TimeAmount? = .seconds(30), maxBodyBytes: Int = 64 << 20,
                      completion: @escaping (Result<HTTPClientResponse, HTTPError>) -> Void) -> HTTPClientTask {
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        var tooBig = false
        var taskRef: HTTPClientTask?
        let task = execute(request, timeout: timeout, onHead: { head = $0 }, onBody: { chunk in
            guard !tooBig else { return }
            if body.count + chunk.count > maxBodyBytes {
                tooBig = true
                let t = taskRef
                taskRef = nil
                t?.cancel()
                completion(.failure(.bodyTooLarge(limit: maxBodyBytes)))
                return
            }
            body.append(contentsOf: chunk)
        }, onComplete: { result in
            taskRef = nil
            switch result {
            case .success(let trailers):
                guard let h = head else { completion(.failure(.malformedResponse("no response head"))); return }
                completion(.success(HTTPClientResponse(head: h, body: body, trailers: trailers)))
            case .failure(let e):
                completion(.failure(e))
            }
        })
        if !task.isFinished { taskRef = task }
        return task
    }

    /// Connections to `origin` now: busy, idle, or being dialled.
    public func connections(to origin: HTTPOrigin) -> Int { connectionCounts[origin, default: 0] }

    /// Closes every idle connection.
    public func closeIdle() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for c in all { c.stream.close(nil) }
    }

    // MARK: Pool

    private func start(_ task: HTTPClientTask) {
        task.attempts += 1
        assign(task)
    }

    /// Sends `task` on an idle connection, dials a new one, or queues it at the cap.
    private func assign(_ task: HTTPClientTask) {
        let origin = task.request.origin
        while var list = idle[origin], let c = list.popLast() {
            idle[origin] = list.isEmpty ? nil : list
            if c.state == .idle {
                active[ObjectIdentifier(c)] = c
                c.send(task)
                return
            }
        }
        guard connectionCounts[origin, default: 0] < maxConnectionsPerOrigin else {
            var queue = (waiting[origin] ?? []).filter { !$0.isFinished }
            lastLimitedOrigin = origin
            guard queue.count < maxWaitingPerOrigin else {
                requestsRefused &+= 1
                limitLog.record()
                task.complete(.failure(.tooManyWaiting(limit: maxWaitingPerOrigin, origin: origin)))
                return
            }
            requestsQueued &+= 1
            limitLog.record()
            queue.append(task)
            waiting[origin] = queue
            return
        }
        connectionCounts[origin, default: 0] += 1
        // A dial abandoned with its task (cancelled, or past its deadline) frees its place.
        task.onDialAbandoned = { [weak self] in self?.connectionEnded(origin) }
        task.dialer = StreamDialer.dial(loop: loop, origin: origin, connector: connector, proxies: proxies,
                                        timeout: connectTimeout) { [weak self] result in
            // The dialer holds the task until it reports: a caller may drop its handle.
            task.onDialAbandoned = nil
            guard let self else {
                if case .success(let s) = result { s.close(nil) }
                return
            }
            task.dialer = nil
            guard !task.isFinished else {
                if case .success(let s) = result { s.close(nil) }
                self.connectionEnded(origin)
                return
            }
            switch result {
            case .failure(let e):
                self.connectionEnded(origin)
                task.complete(.failure(HTTPError(e)))
            case .success(let stream):
                self.connectionsOpened += 1
                let c = HTTPClientConnection(client: self, origin: origin, stream: stream)
                self.active[ObjectIdentifier(c)] = c
                c.send(task)
            }
        }
    }

    /// The oldest request still waiting for `origin`, if any.
    private func nextWaiting(_ origin: HTTPOrigin) -> HTTPClientTask? {
        guard var queue = waiting[origin] else { return nil }
        defer { waiting[origin] = queue.isEmpty ? nil : queue }
        while !queue.isEmpty {
            let t = queue.removeFirst()
            if !t.isFinished { return t }
        }
        return nil
    }

    /// A connection (or a dial) of `origin` is gone: a waiting request may take its place.
    private func connectionEnded(_ origin: HTTPOrigin) {
        let n = connectionCounts[origin, default: 1] - 1
        connectionCounts[origin] = n > 0 ? n : nil
        if let next = nextWaiting(origin) { assign(next) }
    }

    func retry(_ task: HTTPClientTask) {
        guard !task.isFinished else { return }
        start(task)
    }

    func release(_ c: HTTPClientConnection) {
        if let next = nextWaiting(c.origin) {
            c.send(next)
            return
        }
        active.removeValue(forKey: ObjectIdentifier(c))
        var list = idle[c.origin] ?? []
        guard list.count < maxIdlePerOrigin else { c.stream.close(nil); return }
        c.startIdle(timeout: idleTimeout)
        list.append(c)
        idle[c.origin] = list
    }

    func connectionClosed(_ c: HTTPClientConnection) {
        active.removeValue(forKey: ObjectIdentifier(c))
        if var list = idle[c.origin], let i = list.firstIndex(where: { $0 === c }) {
            list.remove(at: i)
            idle[c.origin] = list.isEmpty ? nil : list
        }
        connectionEnded(c.origin)
    }
}
