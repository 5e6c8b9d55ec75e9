/// One kept-alive connection of `HTTPClient`: sends a request, parses its response, and goes
/// back to the pool when both sides allow it. While a response is awaited, a gap of the task's
/// `readIdleTimeout` without a byte fails it (one timer, re-armed lazily as bytes arrive).
final class HTTPClientConnection: ByteStreamDelegate {
    enum State { case idle, busy, closed }

    unowned let client: HTTPClient
    let origin: HTTPOrigin
    let stream: ByteStream
    private var parser: HTTPParser
    private(set) var state: State = .idle
    private var task: HTTPClientTask?
    private var head: HTTPResponseHead?
    /// The current request's response head has arrived (a deadline now passes in its body).
    var hasResponseHead: Bool { head != nil }
    private var receivedBytes = false
    private(set) var requestsSent = 0
    private var idleTimer: LoopTimer?
    private var requestWantsClose = false
    private var readTimer: LoopTimer?
    private var lastRead = Deadline.now()

    init(client: HTTPClient, origin: HTTPOrigin, stream: ByteStream) {
        self.client = client
        self.origin = origin
        self.stream = stream
        parser = HTTPParser(kind: .response, limits: HTTPParser.Limits(maxHeadBytes: 64 * 1024, maxHeaders: 256, maxBodyBytes: Int.max))
        stream.delegate = self
    }

    func send(_ task: HTTPClientTask) {
        idleTimer?.cancel()
        idleTimer = nil
        state = .busy
        self.task = task
        task.connection = self
        head = nil
        receivedBytes = false
        requestsSent += 1
        let r = task.request
        parser.requestMethod = r.method
        requestWantsClose = r.headers.hasToken("Connection", "close")
        var h = HTTPHeaders()
        if !r.headers.contains("Host") { h.add("Host", r.origin.hostHeader) }
        for f in r.headers.fields where !HTTPHeaders.sameName(f.name, "Content-Length") { h.add(f.name, f.value) }
        if !r.body.isEmpty || ["POST", "PUT", "PATCH"].contains(r.method) { h.add("Content-Length", "\(r.body.count)") }
        var out: [UInt8] = []
        HTTPWriter.appendRequestHead(HTTPRequestHead(method: r.method, target: r.target, headers: h), into: &out)
        out.append(contentsOf: r.body)
        stream.write(out)
        if task.readingPaused { stream.pauseReading() }
        if task.readIdleTimeout > .zero {
            lastRead = stream.loop.now
            armReadTimer(task.readIdleTimeout)
        }
    }

    private func armReadTimer(_ gap: TimeAmount) {
        readTimer = stream.loop.schedule(at: lastRead + gap) { [weak self] in self?.readTimerFired(gap) }
    }

    private func readTimerFired(_ gap: TimeAmount) {
        readTimer = nil
        guard state == .busy, let t = task else { return }
        // A consumer that paused reading is why nothing arrives: that is not the server's silence.
        if t.readingPaused { lastRead = stream.loop.now }
        if stream.loop.now < lastRead + gap { armReadTimer(gap); return }
        task = nil
        t.complete(.failure(.timedOut(phase: .silence, after: gap)))
        stream.close(.timedOut("no response data from \(origin) for \(gap)"))
    }

    private func stopReadTimer() {
        readTimer?.cancel()
        readTimer = nil
    }

    /// Drops the current request's connection (cancel or timeout).
    func abandon(_ reason: ConnectionError) {
        task = nil
        stopReadTimer()
        stream.close(reason)
    }

    func startIdle(timeout: TimeAmount) {
        state = .idle
        idleTimer = stream.loop.schedule(in: timeout) { [weak self] in self?.stream.close(nil) }
    }

    // MARK: ByteStreamDelegate

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        guard state == .busy else {
            // A server speaking on an idle connection: not ours to parse; drop the connection.
            stream.close(.protocolViolation("unexpected bytes on an idle connection"))
            return
        }
        receivedBytes = true
        lastRead = stream.loop.now
        parser.feed(bytes)
        process()
    }

    func streamDidReadEOF(_ stream: ByteStream) {
        guard state == .busy else { stream.close(nil); return }
        parser.feedEOF()
        process()
        if state == .busy { stream.close(nil) }
    }

    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        let wasBusy = state == .busy
        state = .closed
        idleTimer?.cancel()
        idleTimer = nil
        stopReadTimer()
        client.connectionClosed(self)
        guard wasBusy, let t = task else { return }
        task = nil
        // A reused connection the server had already closed: try once more on a fresh one.
        if !receivedBytes && requestsSent > 1 && t.request.isRetryable && t.attempts < 2 {
            client.retry(t)
            return
        }
        t.complete(.failure(error.map(HTTPError.init) ?? .closedEarly))
    }

    private func process() {
        while state == .busy, let t = task {
            let event: HTTPParserEvent?
            do { event = try parser.next() } catch {
                task = nil
                t.complete(.failure(.malformedResponse("from \(origin): \(error.message)")))
                stream.close(.protocolViolation(error.message))
                return
            }
            guard let event else { return }
            switch event {
            case .responseHead(let h):
                head = h
                t.onHead?(h)
            case .body(let bytes):
                t.onBody?(bytes)
            case .end(let trailers):
                task = nil
                stopReadTimer()
                if t.readingPaused { stream.resumeReading() }
                let reusable = (head?.keepAlive ?? false) && !requestWantsClose && !parser.isStopped && parser.isIdle
                if reusable { client.release(self) } else { stream.close(nil) }
                t.complete(.success(trailers))
                return
            case .requestHead:
                break
            }
        }
    }
}
