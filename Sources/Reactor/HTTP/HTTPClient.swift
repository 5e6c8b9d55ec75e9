/// An HTTP/1.1 client on the loop, with a keep-alive pool per origin, a deadline per request,
/// streaming bodies (a callback per chunk, for Kubernetes watches), proxies through CONNECT
/// (HTTPS_PROXY / HTTP_PROXY / NO_PROXY) and a pluggable connector for TCP and TLS.
public final class HTTPClient {
    public unowned let loop: EventLoop
    public let connector: HTTPConnector
    public var proxies: HTTPProxySettings
    public var idleTimeout: TimeAmount = .seconds(30)
    public var maxIdlePerOrigin = 8
    public var connectTimeout: TimeAmount = .seconds(10)
    private var idle: [HTTPOrigin: [HTTPClientConnection]] = [:]
    private var active: [ObjectIdentifier: HTTPClientConnection] = [:]
    public private(set) var connectionsOpened = 0

    public init(loop: EventLoop, connector: HTTPConnector, proxies: HTTPProxySettings = .none) {
        self.loop = loop
        self.connector = connector
        self.proxies = proxies
    }


    /// Streams the response: `onHead` once, `onBody` per chunk, then `onComplete` with the
    /// trailers or the error. `timeout` covers connecting and the whole response (nil: none).
    @discardableResult
    public func execute(_ request: HTTPClientRequest, timeout: TimeAmount?,
                        onHead: @escaping (HTTPResponseHead) -> Void,
                        onBody: @escaping ([UInt8]) -> Void,
                        onComplete: @escaping (Result<HTTPHeaders, ConnectionError>) -> Void) -> HTTPClientTask {
        let task = HTTPClientTask(request: request, onHead: onHead, onBody: onBody, onComplete: onComplete)
        if let timeout {
            task.timer = loop.schedule(in: timeout) { [weak task] in
                guard let task else { return }
                let c = task.connection
                task.complete(.failure(.timedOut("\(request.method) \(request.origin)\(request.target) after \(timeout)")))
                c?.abandon(.timedOut("request deadline"))
            }
        }
        start(task)
        return task
    }

    /// The whole response, body collected up to `maxBodyBytes`.
    @discardableResult
    public func fetch(_ request: HTTPClientRequest, timeout: TimeAmount? = .seconds(30), maxBodyBytes: Int = 64 << 20,
                      completion: @escaping (Result<HTTPClientResponse, ConnectionError>) -> Void) -> HTTPClientTask {
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
                completion(.failure(.protocolViolation("response body exceeds \(maxBodyBytes) bytes")))
                return
            }
            body.append(contentsOf: chunk)
        }, onComplete: { result in
            taskRef = nil
            switch result {
            case .success(let trailers):
                guard let h = head else { completion(.failure(.protocolViolation("no response head"))); return }
                completion(.success(HTTPClientResponse(head: h, body: body, trailers: trailers)))
            case .failure(let e):
                completion(.failure(e))
            }
        })
        if !task.isFinished { taskRef = task }
        return task
    }

    /// Closes every idle connection.
    public func closeIdle() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for c in all { c.stream.close(nil) }
    }

    // MARK: Pool

    private func start(_ task: HTTPClientTask) {
        task.attempts += 1
        let origin = task.request.origin
        while var list = idle[origin], let c = list.popLast() {
            idle[origin] = list.isEmpty ? nil : list
            if c.state == .idle {
                active[ObjectIdentifier(c)] = c
                c.send(task)
                return
            }
        }
        task.dialer = StreamDialer.dial(loop: loop, origin: origin, connector: connector, proxies: proxies,
                                        timeout: connectTimeout) { [weak self] result in
            // The dialer holds the task until it reports: a caller may drop its handle.
            guard let self, !task.isFinished else {
                if case .success(let s) = result { s.close(nil) }
                return
            }
            task.dialer = nil
            switch result {
            case .failure(let e):
                task.complete(.failure(e))
            case .success(let stream):
                self.connectionsOpened += 1
                let c = HTTPClientConnection(client: self, origin: origin, stream: stream)
                self.active[ObjectIdentifier(c)] = c
                c.send(task)
            }
        }
    }

    func retry(_ task: HTTPClientTask) {
        guard !task.isFinished else { return }
        start(task)
    }

    func release(_ c: HTTPClientConnection) {
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
    }
}
