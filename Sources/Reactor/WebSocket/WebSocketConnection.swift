/// A WebSocket on any ByteStream (TCP, TLS), after the opening handshake.
///
/// Pings are answered automatically. The close handshake: whoever closes first sends a close
/// frame and waits (up to `closeTimeout`) for the peer's; the other side echoes the code. The
/// server then closes the stream; the client half-closes and waits for that. Protocol errors
/// send their close code (1002, 1007, 1009) and end only this connection.
///
/// The connection keeps itself alive while open (the loop owns it), so a handler may drop it.
public final class WebSocketConnection: ByteStreamDelegate {
    public enum Role: Sendable { case client, server }
    public enum State: Sendable, Equatable { case open, closeSent, closed }

    public let stream: ByteStream
    public let role: Role
    public let subprotocol: String?
    public private(set) var state: State = .open
    public var closeTimeout: TimeAmount = .seconds(5)
    /// When bytes last arrived (for "close a client silent for 90 s").
    public private(set) var lastReceived: Deadline
    /// Bytes written and not yet sent, whatever the stream below (for slow-client limits).
    public var queuedBytes: Int { stream.queuedBytes }

    public var onText: ((String) -> Void)?
    public var onBinary: (([UInt8]) -> Void)?
    /// Set instead of `onBinary` to get whole binary messages in place, without a copy (the
    /// bytes are valid during the call only). Fragmented messages still come as one piece.
    public var onBinaryBytes: ((UnsafeRawBufferPointer) -> Void)?
    public var onPing: (([UInt8]) -> Void)?
    public var onPong: (([UInt8]) -> Void)?
    /// Once, at the end: the close code and reason we received (nil code: none, or an abnormal
    /// end), and the error if the connection failed.
    public var onClose: ((UInt16?, String, ConnectionError?) -> Void)?
    public var onWritabilityChanged: ((Bool) -> Void)?

    private var decoder: WebSocketDecoder
    private var out: [UInt8] = []
    private let masks: MaskKeySource?
    private var selfRef: WebSocketConnection?
    private var closeTimer: LoopTimer?
    private var receivedCode: UInt16?
    private var receivedReason = ""
    private var closeReported = false
    private var delivering = false
    private var pendingInput: [UInt8]?

    public var loop: EventLoop { stream.loop }
    public var isWritable: Bool { stream.isWritable }
    public var maxMessageSize: Int {
        get { decoder.maxMessageSize }
        set { decoder.maxMessageSize = newValue }
    }

    /// Takes over `stream` (becomes its delegate). `leftover`: bytes that followed the handshake.
    public init(stream: ByteStream, role: Role, subprotocol: String? = nil, leftover: [UInt8] = [], maxMessageSize: Int = 16 << 20) {
        self.stream = stream
        self.role = role
        self.subprotocol = subprotocol
        lastReceived = stream.loop.now
        decoder = WebSocketDecoder(role: role == .server ? .server : .client, maxMessageSize: maxMessageSize)
        masks = role == .client ? MaskKeySource() : nil
        selfRef = self
        stream.delegate = self
        if !leftover.isEmpty { pendingInput = leftover }
    }

    /// Processes bytes that arrived with the handshake. Call after setting the callbacks.
    public func start() {
        if let p = pendingInput {
            pendingInput = nil
            decoder.feed(p)
            processInput()
        }
    }

    // MARK: Sending

    public func sendText(_ text: String) {
        var t = text
        t.withUTF8 { send(.text, UnsafeRawBufferPointer($0)) }
    }

    public func sendBinary(_ bytes: UnsafeRawBufferPointer) { send(.binary, bytes) }
    public func sendBinary(_ bytes: [UInt8]) { bytes.withUnsafeBytes { send(.binary, $0) } }
    public func sendPing(_ payload: [UInt8] = []) { payload.withUnsafeBytes { send(.ping, UnsafeRawBufferPointer(rebasing: $0.prefix(125))) } }

    /// Sends one frame (a whole message, or a control frame).
    public func send(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) {
        guard state == .open else { return }
        writeFrame(opcode, payload, fin: fin)
    }

    private func writeFrame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) {
        var mask: UInt32?
        if let masks {
            guard let key = masks.next() else {
                // Not even a close frame can go out unmasked: end the stream with the reason.
                state = .closed
                let error = ConnectionError.closedLocally("no random bytes for a WebSocket mask key")
                report(error)
                finish(error)
                return
            }
            mask = key
        }
        WebSocketFrameEncoder.append(opcode: opcode, fin: fin, payload: payload, maskKey: mask, into: &out)
        out.withUnsafeBytes { stream.write($0) }
        out.removeAll(keepingCapacity: out.capacity <= 256 * 1024)
    }

    /// Starts the close handshake.
    public func close(code: UInt16 = 1000, reason: String = "") {
        guard state == .open else { return }
        sendClose(code, reason)
        state = .closeSent
        closeTimer = loop.schedule(in: closeTimeout) { [weak self] in
            self?.finish(.timedOut("WebSocket close handshake"))
        }
    }

    private func sendClose(_ code: UInt16?, _ reason: String) {
        var payload: [UInt8] = []
        if let code {
            payload = [UInt8(code >> 8), UInt8(code & 0xFF)]
            payload.append(contentsOf: reason.utf8.prefix(123))
        }
        payload.withUnsafeBytes { writeFrame(.close, $0) }
    }

    // MARK: ByteStreamDelegate

    public func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        guard state != .closed else { return }
        lastReceived = loop.now
        decoder.feed(bytes)
        processInput()
    }

    public func streamDidReadEOF(_ stream: ByteStream) {
        if state == .closed || receivedCode != nil || closeReported {
            stream.close(nil)
        } else {
            finish(.protocolViolation("connection closed without a WebSocket close frame (1006)"))
        }
    }

    public func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        onWritabilityChanged?(writable)
    }

    public func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        closeTimer?.cancel()
        closeTimer = nil
        let wasClean = state == .closed && error == nil
        state = .closed
        report(wasClean || receivedCode != nil ? error : (error ?? .protocolViolation("connection closed without a WebSocket close frame (1006)")))
        selfRef = nil
    }

    // MARK: Receiving

    private func processInput() {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while state != .closed {
            if let inPlace = onBinaryBytes, state == .open {
                let n: Int?
                do { n = try decoder.beginWholeBinaryMessage() } catch {
                    fail(error)
                    return
                }
                if let n {
                    // The slice shares the decoder's storage; a feed during the call (a lower
                    // stream delivering while we write) copies it instead of moving it under us.
                    decoder.pendingPayload(n).withUnsafeBytes { inPlace($0) }
                    decoder.consumePayload(n)
                    continue
                }
            }
            let event: WebSocketEvent?
            do {
                event = try decoder.next()
            } catch {
                fail(error)
                return
            }
            guard let event else { return }
            switch event {
            case .text(let bytes):
                if state == .open { onText?(String(decoding: bytes, as: UTF8.self)) }
            case .binary(let bytes):
                if state == .open {
                    if let inPlace = onBinaryBytes { bytes.withUnsafeBytes { inPlace($0) } } else { onBinary?(bytes) }
                }
            case .ping(let payload):
                if state == .open { payload.withUnsafeBytes { writeFrame(.pong, $0) } }
                onPing?(payload)
            case .pong(let payload):
                onPong?(payload)
            case .close(let code, let reason):
                receivedCode = code ?? 1005
                receivedReason = reason
                if state == .open {
                    // Echo the code (none if the peer sent none).
                    sendClose(code, "")
                }
                state = .closed
                closeTimer?.cancel()
                closeTimer = nil
                report(nil)
                endStream()
                return
            }
        }
    }

    private func fail(_ error: WebSocketError) {
        loop.logger.debug("websocket: protocol error", metadata: ["error": "\(error)"])
        if state == .open { sendClose(error.closeCode, error.message) }
        state = .closed
        report(.protocolViolation(error.description))
        endStream()
    }

    /// Both close frames are out: the server closes the TCP connection, the client half-closes
    /// and lets the server do it (with a timer in case it doesn't).
    private func endStream() {
        if role == .server, let tcp = stream as? TCPConnection {
            tcp.closeWhenFlushed()
            return
        }
        stream.shutdownWrite()
        closeTimer = loop.schedule(in: closeTimeout) { [weak self] in
            self?.stream.close(nil)
        }
    }

    private func finish(_ error: ConnectionError?) {
        state = .closed
        stream.close(error)
    }

    private func report(_ error: ConnectionError?) {
        guard !closeReported else { return }
        closeReported = true
        let cb = onClose
        onClose = nil
        cb?(receivedCode, receivedReason, error)
    }
}
