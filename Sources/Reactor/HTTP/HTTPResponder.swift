/// How a handler answers one request. A small value (no allocation): it names the connection
/// and the request's sequence number, so a late answer to a closed connection is dropped.
/// The reference is strong on purpose: a weak one would move the connection's reference
/// counting to the slow side-table path for every retain on the hot path.
/// Answer exactly once: `send…`, `startStreaming`, or `upgrade`. Answers may come later
/// (from a timer or another callback) — the connection holds the following pipelined
/// requests until then, so responses always go out in order.
public struct HTTPResponder {
    let connection: HTTPServerConnection?
    let sequence: UInt64

    /// The full response: status, extra headers, body. Content-Length and Date are added.
    public func send(_ status: Int, headers: HTTPHeaders = HTTPHeaders(), body: UnsafeRawBufferPointer) {
        connection?.respond(sequence, status: status, contentType: nil, headers: headers, body: body)
    }

    public func send(_ status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        body.withUnsafeBytes { send(status, headers: headers, body: $0) }
    }

    public func send(_ status: Int, contentType: String, body: String, headers: HTTPHeaders = HTTPHeaders()) {
        var b = body
        b.withUTF8 { connection?.respond(sequence, status: status, contentType: contentType, headers: headers, body: UnsafeRawBufferPointer($0)) }
    }

    public func send(_ status: Int, contentType: String, body: UnsafeRawBufferPointer, headers: HTTPHeaders = HTTPHeaders()) {
        connection?.respond(sequence, status: status, contentType: contentType, headers: headers, body: body)
    }

    /// A pre-encoded JSON body.
    public func sendJSON(_ status: Int, _ json: String, headers: HTTPHeaders = HTTPHeaders()) {
        send(status, contentType: "application/json", body: json, headers: headers)
    }

    public func sendJSON(_ status: Int, bytes: [UInt8], headers: HTTPHeaders = HTTPHeaders()) {
        bytes.withUnsafeBytes { send(status, contentType: "application/json", body: $0, headers: headers) }
    }

    /// `{"error": "...", "status": N}`.
    public func sendError(_ status: Int, _ message: String, headers: HTTPHeaders = HTTPHeaders()) {
        sendJSON(status, JSONText.errorBody(message, status: status), headers: headers)
    }

    /// Sends the head now and keeps the response open: write chunks later, then `finish()`.
    /// HTTP/1.1 clients get a chunked body; 1.0 clients a body that ends when the connection closes.
    public func startStreaming(_ status: Int = 200, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponseStream {
        guard let c = connection else { return HTTPResponseStream.closed() }
        return c.startStreaming(sequence, status: status, headers: headers)
    }

    /// Switches protocols: writes `101 Switching Protocols` with `headers`, then hands the raw
    /// stream and any bytes that followed the request to `onUpgrade`, which must become the
    /// stream's delegate. The HTTP connection is done with the stream after that.
    public func upgrade(headers: HTTPHeaders, _ onUpgrade: @escaping (ByteStream, [UInt8]) -> Void) {
        connection?.upgrade(sequence, headers: headers, onUpgrade)
    }

    /// Whether the client is still there to answer.
    public var isActive: Bool { connection?.isActive(sequence) ?? false }
}

/// A response body written over time (SSE, followed logs). Writes after the client has gone
/// are dropped; `onClose` tells the producer to stop.
public final class HTTPResponseStream {
    /// Strong until the stream ends (then cleared, breaking the cycle with the connection).
    var connection: HTTPServerConnection?
    let chunked: Bool
    public private(set) var isOpen = true
    /// Called once when the client goes away or the stream is finished.
    public var onClose: (() -> Void)?
    /// The connection's write queue crossed the high-water mark (false) or drained (true).
    public var onWritabilityChanged: ((Bool) -> Void)?

    static func closed() -> HTTPResponseStream {
        let s = HTTPResponseStream(connection: nil, chunked: false)
        s.isOpen = false
        return s
    }

    init(connection: HTTPServerConnection?, chunked: Bool) {
        self.connection = connection
        self.chunked = chunked
    }

    public var isWritable: Bool { connection?.stream.isWritable ?? false }
    /// Bytes written and not yet sent: what a slow reader of this stream costs.
    public var queuedBytes: Int { connection?.stream.queuedBytes ?? 0 }
    public var loop: EventLoop? { connection?.stream.loop }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, let c = connection, bytes.count > 0 else { return }
        c.writeStreamChunk(bytes, chunked: chunked)
    }

    public func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }
    public func write(_ text: String) { var t = text; t.withUTF8 { write(UnsafeRawBufferPointer($0)) } }

    /// Ends the connection at once, dropping what is queued (a client too slow to keep up).
    public func abort() {
        guard isOpen, let c = connection else { return }
        c.stream.close(.closedLocally("response stream aborted"))
    }

    /// Ends the body; the connection goes on with the next request.
    public func finish() {
        guard isOpen else { return }
        isOpen = false
        let c = connection
        connection = nil
        c?.finishStream(chunked: chunked)
        fireClose()
    }

    func connectionClosed() {
        guard isOpen else { return }
        isOpen = false
        connection = nil
        fireClose()
    }

    private func fireClose() {
        let cb = onClose
        onClose = nil
        onWritabilityChanged = nil
        cb?()
    }
}
