import Logging

/// One client connection of `HTTPServer`: feeds the parser, runs one request at a time
/// (pipelined requests wait in the parser, so answers go out in order), enforces the
/// head/body/idle timeouts, and writes responses through a reused output buffer.
///
/// Backpressure both ways: pipelined input waits in the parser (bounded by `maxBufferedInput`),
/// and no further pipelined request is handled while the stream is over its high-water mark
/// (`awaitingWritable`: reading pauses too, as nginx stops reading a client that does not read
/// its answers). Without that, a client that pipelines requests and never reads the answers
/// would have them queued without limit.
///
/// Timeouts use one timer per connection and a moving deadline: a request only stores a new
/// deadline, and the timer, when it fires early, re-arms itself for it (nginx's lazy timer).
/// Every phase is timed: the first request's head from accept (a connection that sends
/// nothing is not held for the keep-alive idle timeout), later heads from their first byte,
/// bodies by the gap between bytes and in total, keep-alive idle, the lingering close.
final class HTTPServerConnection {
    enum Phase {
        case idle, readingHead, readingBody, handling, streaming, closing, upgraded, closed
        /// Between requests, with the answers so far unread by the client: the next pipelined
        /// request waits until the stream drains below its low-water mark.
        case awaitingWritable
    }

    /// Answers are batched across pipelined requests up to this many bytes, then written out so
    /// the stream's high-water mark sees them.
    static let pipelinedOutputBatch = 16 * 1024

    unowned let server: HTTPServer
    // Copied from the server: the loop and the server are weakly referenced elsewhere, so they
    // count references through side tables, and going through `unowned` on every request showed
    // up as the top cost under wrk. Strong `let`s are read without any reference counting.
    let loop: EventLoop
    let configuration: HTTPServerConfiguration
    let dateCache: HTTPDateCache
    let handler: HTTPHandler
    let stats: HTTPServerStats
    let stream: ByteStream
    let peer: SocketAddress?
    private var parser: HTTPParser
    private var phase: Phase = .idle
    private var out: [UInt8] = []
    private var sequence: UInt64 = 0
    private var currentHead: HTTPRequestHead?
    private var currentBody: [UInt8] = []
    private var keepAlive = true
    private var deadline: Deadline?
    private var timer: LoopTimer?
    private var timerDeadline: Deadline?
    private var processing = false
    private var readPaused = false
    private var responseStream: HTTPResponseStream?
    /// The current request's method and the route the router matched (for `onResponse`).
    private var requestMethod = ""
    var route: String?
    /// When the body being read must be complete (`bodyTotalTimeout` after its head).
    private var bodyDeadline: Deadline?
    /// Since when the connection has had nothing in progress (idle, lingering, or waiting for
    /// its client to read); nil while a request is read or handled. At the connection limit the
    /// server closes the one idle longest.
    private(set) var idleSince: Deadline?
    private(set) var streamDelegate: HTTPServerStreamDelegate?

    init(server: HTTPServer, stream: ByteStream, peer: SocketAddress?) {
        self.server = server
        self.loop = server.loop
        self.configuration = server.configuration
        self.dateCache = server.dateCache
        self.handler = server.handler
        self.stats = server.stats
        self.stream = stream
        self.peer = peer
        parser = HTTPParser(kind: .request, limits: server.configuration.limits)
        out.reserveCapacity(512)
        streamDelegate = HTTPServerStreamDelegate(self)
    }

    func start() {
        idleSince = loop.now
        setDeadline(configuration.headTimeout)
    }

    /// Closed by the server to make room at its connection limit (only while idle).
    func shed() {
        loop.logger.debug("http: idle connection closed to make room", metadata: ["peer": "\(peer.map { "\($0)" } ?? "-")"])
        stream.close(.closedLocally("idle connection closed at the connection limit"))
    }

    var bufferedBytes: Int { parser.bufferedBytes + out.count + currentBody.count + stream.queuedBytes }

    func isActive(_ seq: UInt64) -> Bool { seq == sequence && (phase == .handling || phase == .streaming) }

    // MARK: Stream events (through HTTPServerStreamDelegate)

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        guard phase != .closing && phase != .closed else { return }
        parser.feed(bytes)
        if phase == .idle { beginHead() }
        if phase == .readingBody { armBodyDeadline() }
        processInput()
        flush()
    }

    func streamDidReadEOF(_ stream: ByteStream) {
        // A half-closed client may still wait for answers to what it sent; finish those first.
        parser.feedEOF()
        // The pipelined requests still in the parser are answered once the client has read
        // what it was sent so far (see `stream(_:writabilityChanged:)`).
        if phase == .awaitingWritable { return }
        if phase == .streaming {
            // Nobody reads an endless response from a client that has hung up.
            stream.close(nil)
            return
        }
        if phase == .handling {
            keepAlive = false   // a half-closed client still gets its answer
            return
        }
        processInput()
        flush()
        if phase != .handling && phase != .streaming && phase != .closed {
            closeAfterFlush()
        }
    }

    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        if writable && phase == .awaitingWritable {
            phase = .idle
            processInput()
            flush()
            if phase == .idle && parser.sawEOF && parser.bufferedBytes == 0 { closeAfterFlush() }
            return
        }
        responseStream?.onWritabilityChanged?(writable)
    }

    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        guard phase != .upgraded else { return }
        phase = .closed
        timer?.cancel()
        timer = nil
        let rs = responseStream
        responseStream = nil
        rs?.connectionClosed()
        server.connectionEnded(self)
    }

    // MARK: Requests

    private func processInput() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while phase == .idle || phase == .readingHead || phase == .readingBody {
            if phase == .idle && !holdForUnreadAnswers() { break }
            let event: HTTPParserEvent?
            do {
                event = try parser.next()
            } catch {
                fail(error)
                return
            }
            guard let event else {
                if phase == .idle && parser.bufferedBytes > 0 { beginHead() }
                break
            }
            switch event {
            case .requestHead(let head):
                currentHead = head
                currentBody = []
                phase = .readingBody
                idleSince = nil
                bodyDeadline = loop.now + configuration.bodyTotalTimeout
                armBodyDeadline()
                if head.version == .http1_1 && head.headers["Expect"].map({ HTTPHeaders.sameName($0, "100-continue") }) == true {
                    out.append(contentsOf: Self.continueResponse)
                    flush()
                }
            case .body(let bytes):
                currentBody.append(contentsOf: bytes)
            case .responseHead:
                break
            case .end:
                guard let head = currentHead else { break }
                currentHead = nil
                phase = .handling
                deadline = nil
                bodyDeadline = nil
                keepAlive = head.keepAlive && keepAlive
                sequence &+= 1
                stats.requests &+= 1
                let request = HTTPRequest(head: head, body: currentBody, peer: peer)
                currentBody = []
                isHEAD = head.method == "HEAD"
                requestMethod = head.method
                route = nil
                requestVersion = head.version
                handler(request, HTTPResponder(connection: self, sequence: sequence))
            }
        }
        // Hold pipelined input within bounds while a response is pending, and read nothing
        // from a client that does not read its answers.
        let shouldPause = phase == .awaitingWritable || parser.bufferedBytes > configuration.maxBufferedInput
        if shouldPause != readPaused {
            readPaused = shouldPause
            if shouldPause { stream.pauseReading() } else { stream.resumeReading() }
        }
        if phase == .idle { parser.releaseMemoryIfIdle() }
    }

    /// Between requests: writes out a large batch of answers, and returns false (entering
    /// `awaitingWritable`) while the stream holds more than its high-water mark of them.
    private func holdForUnreadAnswers() -> Bool {
        if out.count >= Self.pipelinedOutputBatch { flush() }
        guard stream.isWritable else {
            flush()
            phase = .awaitingWritable
            if idleSince == nil { idleSince = loop.now }
            return false
        }
        return true
    }

    /// A request's first byte arrived. Its head must be whole within the head timeout; the
    /// first request's head counts from accept (`start`), so its deadline stays.
    private func beginHead() {
        phase = .readingHead
        idleSince = nil
        if sequence > 0 { setDeadline(configuration.headTimeout) }
    }

    /// The body must keep coming (no gap over `bodyTimeout`) and be whole by `bodyDeadline`.
    private func armBodyDeadline() {
        let gap = loop.now + configuration.bodyTimeout
        setDeadline(at: bodyDeadline.map { min($0, gap) } ?? gap)
    }

    private var isHEAD = false
    private var requestVersion: HTTPVersion = .http1_1

    private func fail(_ error: HTTPParseError) {
        loop.logger.debug("http: bad request", metadata: ["peer": "\(peer.map { "\($0)" } ?? "-")", "error": "\(error)"])
        let body = JSONText.errorBody(error.message, status: error.status)
        Self.appendSimpleResponse(error.status, body: Array(body.utf8), extra: HTTPHeaders(), close: true,
                                  date: dateCache.current(), into: &out)
        reportServerAnswer(error.status)
        closeAfterFlush()
    }

    private func closeAfterFlush() {
        guard phase != .closing else { return }
        phase = .closing
        if idleSince == nil { idleSince = loop.now }
        flush()
        // Lingering close (as nginx does): FIN after the answer, then read and drop what the
        // client still sends for a moment. Closing with unread input would send a reset that
        // can destroy the answer (a 413 to an upload in flight) before the client reads it.
        stream.shutdownWrite()
        if readPaused {
            // The drain needs reads, even if pipelined input had paused them.
            readPaused = false
            stream.resumeReading()
        }
        let d = loop.now + configuration.lingerTimeout
        deadline = d
        timer?.cancel()
        armTimer(d)
    }

    private func flush() {
        guard !out.isEmpty else { return }
        stream.write(out)
        out.removeAll(keepingCapacity: true)
    }

    /// The current request is answered: go on with the next one, or close.
    private func responseDone() {
        if !keepAlive || (parser.isStopped) {
            closeAfterFlush()
            return
        }
        phase = .idle
        idleSince = loop.now
        setDeadline(configuration.idleTimeout)
        if !processing {
            processInput()
            flush()
        }
    }

    // MARK: Answers (from HTTPResponder)

    func respond(_ seq: UInt64, status: Int, contentType: String?, headers: HTTPHeaders, body: UnsafeRawBufferPointer) {
        guard seq == sequence, phase == .handling else { return }
        if !headers.isEmpty && headers.hasToken("Connection", "close") { keepAlive = false }
        report(status)
        appendHead(status, contentType: contentType, headers: headers, contentLength: body.count)
        if !isHEAD { out.append(contentsOf: body) }
        if !processing { flush() }
        responseDone()
    }

    func startStreaming(_ seq: UInt64, status: Int, headers: HTTPHeaders) -> HTTPResponseStream {
        guard seq == sequence, phase == .handling else { return HTTPResponseStream.closed() }
        report(status)
        let chunked = requestVersion == .http1_1 && !isHEAD
        if !chunked { keepAlive = false }
        appendHead(status, headers: headers, contentLength: isHEAD ? 0 : nil, chunked: chunked)
        flush()
        if isHEAD {
            responseDone()
            return HTTPResponseStream.closed()
        }
        phase = .streaming
        let rs = HTTPResponseStream(connection: self, chunked: chunked)
        responseStream = rs
        return rs
    }

    func writeStreamChunk(_ bytes: UnsafeRawBufferPointer, chunked: Bool) {
        guard phase == .streaming else { return }
        if chunked { HTTPWriter.appendChunk(bytes, into: &out) } else { out.append(contentsOf: bytes) }
        flush()
    }

    func finishStream(chunked: Bool) {
        guard phase == .streaming else { return }
        responseStream = nil
        if chunked { HTTPWriter.appendLastChunk(into: &out) }
        phase = .handling
        flush()
        responseDone()
    }

    func upgrade(_ seq: UInt64, headers: HTTPHeaders, _ onUpgrade: (ByteStream, [UInt8]) -> Void) {
        guard seq == sequence, phase == .handling else { return }
        report(101)
        HTTPWriter.appendStatusLine(101, reason: "Switching Protocols", into: &out)
        HTTPWriter.appendFields(headers, into: &out)
        flush()
        phase = .upgraded
        timer?.cancel()
        timer = nil
        let leftover = parser.takeBufferedBytes()
        if readPaused { stream.resumeReading() }
        stream.delegate = nil
        streamDelegate = nil
        server.connectionEnded(self)
        onUpgrade(stream, leftover)
    }

    // MARK: Reporting answers

    @inline(__always)
    private func report(_ status: Int) {
        guard let observe = stats.onResponse else { return }
        observe(HTTPResponseRecord(method: requestMethod, route: route, status: status))
    }

    /// An answer the server wrote itself to a request no handler saw (its head, if read, is
    /// `currentHead`: it is cleared once a request is handed over).
    private func reportServerAnswer(_ status: Int) {
        stats.onResponse?(HTTPResponseRecord(method: currentHead?.method ?? "", route: nil, status: status))
    }

    // MARK: Writing heads

    static let continueResponse = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private func appendHead(_ status: Int, contentType: String? = nil, headers: HTTPHeaders, contentLength: Int?, chunked: Bool = false) {
        HTTPWriter.appendStatusLine(status, reason: HTTPStatus.reason(status), version: .http1_1, into: &out)
        out.append(contentsOf: Self.dateName)
        out.append(contentsOf: dateCache.current())
        out.append(0x0D); out.append(0x0A)
        if let contentType { HTTPWriter.appendField("Content-Type", contentType, into: &out) }
        for f in headers.fields where !HTTPHeaders.sameName(f.name, "Content-Length") && !HTTPHeaders.sameName(f.name, "Connection") {
            HTTPWriter.appendField(f.name, f.value, into: &out)
        }
        for f in configuration.responseHeaders.fields { HTTPWriter.appendField(f.name, f.value, into: &out) }
        if let n = contentLength, status >= 200, status != 204, status != 304 {
            out.append(contentsOf: Self.contentLengthName)
            HTTPWriter.appendDecimal(n, into: &out)
            out.append(0x0D); out.append(0x0A)
        }
        if chunked { out.append(contentsOf: Self.chunkedField) }
        if !keepAlive {
            out.append(contentsOf: Self.closeField)
        } else if requestVersion == .http1_0 {
            out.append(contentsOf: Self.keepAliveField)
        }
        out.append(0x0D); out.append(0x0A)
    }

    static let dateName = Array("Date: ".utf8)
    static let contentLengthName = Array("Content-Length: ".utf8)
    static let chunkedField = Array("Transfer-Encoding: chunked\r\n".utf8)
    static let closeField = Array("Connection: close\r\n".utf8)
    static let keepAliveField = Array("Connection: keep-alive\r\n".utf8)

    static func appendSimpleResponse(_ status: Int, body: [UInt8], extra: HTTPHeaders, close: Bool, date: [UInt8], into out: inout [UInt8]) {
        HTTPWriter.appendStatusLine(status, reason: HTTPStatus.reason(status), into: &out)
        out.append(contentsOf: dateName); out.append(contentsOf: date); out.append(0x0D); out.append(0x0A)
        HTTPWriter.appendField("Content-Type", "application/json", into: &out)
        for f in extra.fields { HTTPWriter.appendField(f.name, f.value, into: &out) }
        out.append(contentsOf: contentLengthName)
        HTTPWriter.appendDecimal(body.count, into: &out)
        out.append(0x0D); out.append(0x0A)
        if close { out.append(contentsOf: closeField) }
        out.append(0x0D); out.append(0x0A)
        out.append(contentsOf: body)
    }

    // MARK: Timeouts

    private func setDeadline(_ after: TimeAmount) { setDeadline(at: loop.now + after) }

    private func setDeadline(at d: Deadline) {
        deadline = d
        if let td = timerDeadline, td <= d, timer != nil { return }   // the armed timer fires first and re-arms
        timer?.cancel()
        armTimer(d)
    }

    private func armTimer(_ d: Deadline) {
        timerDeadline = d
        timer = loop.schedule(at: d) { [weak self] in self?.timerFired() }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard let d = deadline, phase != .closed, phase != .upgraded else { return }
        if Deadline.now() < d { armTimer(d); return }
        switch phase {
        case .closing:
            stream.close(nil)
        case .idle:
            if sequence == 0 {
                loop.logger.debug("http: no request on a new connection", metadata: ["peer": "\(peer.map { "\($0)" } ?? "-")",
                                                                                    "timeout": "\(configuration.headTimeout)"])
            }
            stream.close(nil)
        case .awaitingWritable:
            loop.logger.debug("http: client did not read its answers", metadata: ["peer": "\(peer.map { "\($0)" } ?? "-")",
                                                                               "timeout": "\(configuration.idleTimeout)"])
            stream.close(nil)
        case .readingHead, .readingBody:
            let what = phase == .readingHead ? "request head not received within \(configuration.headTimeout)"
                : bodyDeadline.map({ d >= $0 }) == true ? "request body not complete within \(configuration.bodyTotalTimeout)"
                : "request body stalled for \(configuration.bodyTimeout)"
            let body = JSONText.errorBody(what, status: 408)
            Self.appendSimpleResponse(408, body: Array(body.utf8), extra: HTTPHeaders(), close: true,
                                      date: dateCache.current(), into: &out)
            reportServerAnswer(408)
            closeAfterFlush()
        default:
            break
        }
    }
}

/// The stream's delegate. Streams hold delegates weakly, and a weakly referenced object pays
/// for every retain and release through a side table; this forwarder takes that cost once per
/// read so the connection itself (retained by each request's responder) stays on the fast path.
final class HTTPServerStreamDelegate: ByteStreamDelegate {
    unowned let connection: HTTPServerConnection
    init(_ connection: HTTPServerConnection) { self.connection = connection }

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { connection.stream(stream, didRead: bytes) }
    func streamDidReadEOF(_ stream: ByteStream) { connection.streamDidReadEOF(stream) }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) { connection.stream(stream, writabilityChanged: writable) }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { connection.stream(stream, didCloseWith: error) }
}
