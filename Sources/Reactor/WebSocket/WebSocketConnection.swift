/// A WebSocket on any ByteStream (TCP, TLS), after the opening handshake.
///
/// Pings are answered automatically. The close handshake: whoever closes first sends a close
/// frame and waits (up to `closeTimeout`) for the peer's; the other side echoes the code. The
/// server then closes the stream; the client half-closes and waits for that. Protocol errors
/// send their close code (1002, 1007, 1009) and end only this connection.
///
/// The connection keeps itself alive while open (the loop owns it), so a handler may drop it.
public final class WebSocketConnection: ByteStreamReadTarget {
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
    /// Set instead of `onBinary` to get binary messages in place, without a copy: all those
    /// decoded from one read, in order, as one batch, in memory the callee may change (valid
    /// during the call only). The stream below then reads straight into the decoder's buffer.
    /// Fragmented messages come as one piece each.
    public var onBinaryBatch: (([UnsafeMutableRawBufferPointer]) -> Void)?
    public var onPing: (([UInt8]) -> Void)?
    public var onPong: (([UInt8]) -> Void)?
    /// Once, at the end: the close code and reason we received (nil code: none, or an abnormal
    /// end), and the error if the connection failed.
    public var onClose: ((UInt16?, String, ConnectionError?) -> Void)?
    public var onWritabilityChanged: ((Bool) -> Void)?

    private var decoder: WebSocketDecoder
    private var out: [UInt8] = []
    /// Scratch for `sendBinary(overwriting:)`, reused from write to write.
    private var frameHeaders: [UInt8] = []
    private var headerEnds: [Int] = []
    private var frameParts: [UnsafeRawBufferPointer] = []
    private let masks: MaskKeySource?
    private var selfRef: WebSocketConnection?
    private var closeTimer: LoopTimer?
    private var receivedCode: UInt16?
    private var receivedReason = ""
    private var closeReported = false
    private var delivering = false
    private var pendingInput: [UInt8]?
    /// Bytes the stream handed us while we were delivering (the batch still lies in the
    /// decoder's buffer, so they wait here).
    private var heldInput: [UInt8] = []
    /// The in-place payloads of the current read, reused from read to read.
    private var batch: [UnsafeMutableRawBufferPointer] = []
    /// How much room a read straight into the decoder gets: large reads, few system calls.
    private static let readSpaceMinimum = 128 * 1024

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

    /// The next frame's mask key: `.some(nil)` for a server (no mask), nil when a client has no
    /// random bytes left, in which case the stream has been ended: not even a close frame can go
    /// out unmasked.
    private func nextMaskKey() -> UInt32?? {
        guard let masks else { return .some(nil) }
        if let key = masks.next() { return .some(key) }
        state = .closed
        let error = ConnectionError.closedLocally("no random bytes for a WebSocket mask key")
        report(error)
        finish(error)
        return nil
    }

    private func writeFrame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) {
        guard let mask = nextMaskKey() else { return }
        WebSocketFrameEncoder.append(opcode: opcode, fin: fin, payload: payload, maskKey: mask, into: &out)
        out.withUnsafeBytes { stream.write($0) }
        out.removeAll(keepingCapacity: out.capacity <= 256 * 1024)
    }

    /// Sends `payload` as binary messages of at most `maxMessageBytes` each, with one write. A
    /// client masks the bytes in place (they are the caller's scratch, changed on return), and a
    /// stream that gathers (TCP) takes headers and payloads where they lie: no copy at all.
    public func sendBinary(overwriting payload: UnsafeMutableRawBufferPointer, maxMessageBytes: Int) {
        guard state == .open, payload.count > 0, maxMessageBytes > 0 else { return }
        frameHeaders.removeAll(keepingCapacity: true)
        headerEnds.removeAll(keepingCapacity: true)
        var offset = 0
        while offset < payload.count {
            let n = min(maxMessageBytes, payload.count - offset)
            guard let key = nextMaskKey() else { return }
            if let key {
                WebSocketMask.apply(key: key, to: UnsafeMutableRawBufferPointer(rebasing: payload[offset..<offset + n]))
            }
            WebSocketFrameEncoder.appendHeader(opcode: .binary, fin: true, length: n, maskKey: key, into: &frameHeaders)
            headerEnds.append(frameHeaders.count)
            offset += n
        }
        frameHeaders.withUnsafeBytes { headers in
            frameParts.removeAll(keepingCapacity: true)
            var headerStart = 0, at = 0
            for end in headerEnds {
                let n = min(maxMessageBytes, payload.count - at)
                frameParts.append(UnsafeRawBufferPointer(rebasing: headers[headerStart..<end]))
                frameParts.append(UnsafeRawBufferPointer(rebasing: payload[at..<at + n]))
                headerStart = end
                at += n
            }
            if stream is GatheringWriter {
                stream.write(vector: frameParts)
            } else {
                // TLS: one contiguous write, so frames fill records instead of each piece
                // making one of its own.
                for part in frameParts { out.append(contentsOf: part) }
                out.withUnsafeBytes { stream.write($0) }
                out.removeAll(keepingCapacity: out.capacity <= 256 * 1024)
            }
            frameParts.removeAll(keepingCapacity: true)
        }
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
        if delivering { heldInput.append(contentsOf: bytes); return }
        decoder.feed(bytes)
        processInput()
    }

    // A tunnel's stream (batch delivery) reads straight into the decoder: no copy before the
    // payloads are handed on. Others (the hub's small messages) read into the loop's shared
    // buffer and keep only what is unfinished.
    public func readSpace(for stream: ByteStream) -> UnsafeMutableRawBufferPointer {
        guard onBinaryBatch != nil, !delivering, state != .closed else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        return decoder.readSpace(atLeast: Self.readSpaceMinimum)
    }

    public func stream(_ stream: ByteStream, didReadInto count: Int) {
        guard state != .closed else { return }
        lastReceived = loop.now
        decoder.didRead(count)
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
        decodeAndDeliver()
        // Input that arrived during delivery, in order, now that the batch is handed on.
        while !heldInput.isEmpty && state != .closed {
            decoder.feed(heldInput)
            heldInput.removeAll(keepingCapacity: heldInput.capacity <= 64 * 1024)
            decodeAndDeliver()
        }
        delivering = false
        if decoder.bufferedBytes == 0 && onBinaryBatch == nil { decoder.releaseMemory() }
    }

    /// Hands on the batch of in-place payloads collected so far (before anything else is
    /// delivered, so the order holds).
    private func deliverBatch() {
        guard !batch.isEmpty else { return }
        if state == .open, let deliver = onBinaryBatch { deliver(batch) }
        batch.removeAll(keepingCapacity: true)
    }

    private func decodeAndDeliver() {
        defer { deliverBatch() }
        while state != .closed {
            if onBinaryBatch != nil, state == .open {
                let n: Int?
                do { n = try decoder.beginWholeBinaryMessage() } catch {
                    deliverBatch()
                    fail(error)
                    return
                }
                if let n {
                    // The payload stays where it lies until the next read or feed, which waits
                    // for this batch (see `heldInput`).
                    batch.append(decoder.pendingPayload(n))
                    decoder.consumePayload(n)
                    continue
                }
            }
            deliverBatch()
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
                    if let deliver = onBinaryBatch {
                        var message = bytes
                        message.withUnsafeMutableBytes { deliver([$0]) }
                    } else {
                        onBinary?(bytes)
                    }
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
