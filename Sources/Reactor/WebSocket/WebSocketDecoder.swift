/// What the decoder produces: whole messages (fragments are joined) and control frames.
public enum WebSocketEvent: Sendable, Equatable {
    case text([UInt8])            // valid UTF-8
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// `code` nil: the close frame had no body (1005 on the receiving side).
    case close(code: UInt16?, reason: String)
}

/// A sans-I/O RFC 6455 frame decoder. Feed bytes, pull events. Control frames may arrive
/// between the fragments of a message and are returned at once. Errors carry the close code.
public struct WebSocketDecoder {
    public enum Role: Sendable { case server, client }   // whose frames we are reading: server reads masked ones

    public let role: Role
    public var maxMessageSize: Int
    /// Raw memory a stream can read straight into (see `readSpace`); payloads are unmasked and
    /// handed on where they lie.
    let buffer: ReceiveBuffer
    var message: [UInt8] = []
    var messageOpcode: WebSocketOpcode?
    var failed: WebSocketError?

    /// `initialCapacity`: the buffer's first allocation (it grows for larger frames).
    public init(role: Role, maxMessageSize: Int = 16 << 20, initialCapacity: Int = 4096) {
        self.role = role
        self.maxMessageSize = maxMessageSize
        buffer = ReceiveBuffer(initialCapacity: initialCapacity)
    }

    /// Copies bytes in. Payloads handed out before are invalid afterwards.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) { buffer.append(bytes) }
    public mutating func feed(_ bytes: [UInt8]) { bytes.withUnsafeBytes { buffer.append($0) } }
    public var bufferedBytes: Int { buffer.count }

    /// Room for a read of at least `minimum` bytes straight into the buffer; report it with
    /// `didRead`. Payloads handed out before are invalid afterwards.
    public func readSpace(atLeast minimum: Int) -> UnsafeMutableRawBufferPointer { buffer.space(atLeast: minimum) }
    public func didRead(_ count: Int) { buffer.didFill(count) }
    /// Frees the buffer while it holds nothing (an idle connection).
    public func releaseMemory() { buffer.releaseMemory() }

    public mutating func next() throws(WebSocketError) -> WebSocketEvent? {
        if let failed { throw failed }
        do {
            while true {
                guard let frame = try nextFrame() else { return nil }
                if let event = try handle(frame) { return event }
            }
        } catch {
            failed = error
            throw error
        }
    }

    struct Frame {
        var fin: Bool
        var opcode: WebSocketOpcode
        var payload: [UInt8]
    }

    /// The tunnel's data path without a copy or an allocation per message: when the next frame
    /// is a whole unfragmented binary message, its header is skipped, its payload unmasked in
    /// place, and its length returned; the payload is then `pendingPayload(n)` (in the buffer)
    /// until `consumePayload(n)`, and its bytes stay where they are until the next `feed` or
    /// `readSpace`. Returns nil, consuming nothing, when the next frame is anything else or not
    /// complete yet; `next()` handles those.
    public mutating func beginWholeBinaryMessage() throws(WebSocketError) -> Int? {
        if let failed { throw failed }
        let header: FrameHeader
        do {
            guard let h = try peekHeader() else { return nil }
            header = h
        } catch {
            failed = error
            throw error
        }
        guard header.opcode == .binary, header.fin, messageOpcode == nil,
              buffer.count >= header.headerLength + header.length else { return nil }
        return takePayload(header)
    }

    /// The payload where it lies; the caller may change it (it is consumed next).
    public func pendingPayload(_ n: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer.bytes.prefix(n))
    }

    public mutating func consumePayload(_ n: Int) { buffer.consume(n) }

    struct FrameHeader {
        var fin: Bool
        var opcode: WebSocketOpcode
        var headerLength: Int
        var length: Int
        var maskKey: UInt32?
    }

    /// The next frame's header, checked, or nil while it is incomplete.
    private func peekHeader() throws(WebSocketError) -> FrameHeader? {
        guard let b0 = buffer.peekInteger(at: 0, as: UInt8.self), let b1 = buffer.peekInteger(at: 1, as: UInt8.self) else { return nil }
        if b0 & 0x70 != 0 { throw WebSocketError(WebSocketError.protocolError, "reserved bits set (no extension negotiated)") }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else {
            throw WebSocketError(WebSocketError.protocolError, "unknown opcode \(b0 & 0x0F)")
        }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        if role == .server && !masked { throw WebSocketError(WebSocketError.protocolError, "client frame is not masked") }
        if role == .client && masked { throw WebSocketError(WebSocketError.protocolError, "server frame is masked") }
        var headerLength = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard let l: UInt16 = buffer.peekInteger(at: 2) else { return nil }
            length = UInt64(l)
            headerLength = 4
        } else if length == 127 {
            guard let l: UInt64 = buffer.peekInteger(at: 2) else { return nil }
            if l >> 63 != 0 { throw WebSocketError(WebSocketError.protocolError, "64-bit length has its top bit set") }
            length = l
            headerLength = 10
        }
        if opcode.isControl {
            if !fin { throw WebSocketError(WebSocketError.protocolError, "fragmented control frame (opcode \(opcode.rawValue))") }
            if length > 125 { throw WebSocketError(WebSocketError.protocolError, "control frame payload of \(length) bytes (max 125)") }
        } else if length > UInt64(maxMessageSize) || UInt64(message.count) + length > UInt64(maxMessageSize) {
            throw WebSocketError(WebSocketError.messageTooBig, "message exceeds \(maxMessageSize) bytes")
        }
        var key: UInt32?
        if masked {
            guard let k: UInt32 = buffer.peekInteger(at: headerLength) else { return nil }
            key = k
            headerLength += 4
        }
        return FrameHeader(fin: fin, opcode: opcode, headerLength: headerLength, length: Int(length), maskKey: key)
    }

    /// Skips a complete frame's header and unmasks its payload in place; returns the payload's
    /// length, which now starts at the buffer's reader index.
    private mutating func takePayload(_ h: FrameHeader) -> Int {
        buffer.consume(h.headerLength)
        if let key = h.maskKey {
            WebSocketMask.apply(key: key, to: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes.prefix(h.length)))
        }
        return h.length
    }

    private mutating func nextFrame() throws(WebSocketError) -> Frame? {
        guard let h = try peekHeader(), buffer.count >= h.headerLength + h.length else { return nil }
        let n = takePayload(h)
        let payload = Array(UnsafeRawBufferPointer(rebasing: buffer.bytes.prefix(n)))
        buffer.consume(n)
        return Frame(fin: h.fin, opcode: h.opcode, payload: payload)
    }

    private mutating func handle(_ frame: Frame) throws(WebSocketError) -> WebSocketEvent? {
        switch frame.opcode {
        case .ping: return .ping(frame.payload)
        case .pong: return .pong(frame.payload)
        case .close: return try parseClose(frame.payload)
        case .continuation:
            guard messageOpcode != nil else {
                throw WebSocketError(WebSocketError.protocolError, "continuation frame without a message in progress")
            }
            message.append(contentsOf: frame.payload)
        case .text, .binary:
            if messageOpcode != nil {
                throw WebSocketError(WebSocketError.protocolError, "new data frame while a fragmented message is unfinished")
            }
            messageOpcode = frame.opcode
            message = frame.payload
        }
        guard frame.fin, let opcode = messageOpcode else { return nil }
        let whole = message
        message = []
        messageOpcode = nil
        if opcode == .text {
            guard whole.withUnsafeBytes({ UTF8Validation.isValid($0) }) else {
                throw WebSocketError(WebSocketError.invalidPayload, "text message is not valid UTF-8")
            }
            return .text(whole)
        }
        return .binary(whole)
    }

    private func parseClose(_ p: [UInt8]) throws(WebSocketError) -> WebSocketEvent {
        if p.isEmpty { return .close(code: nil, reason: "") }
        if p.count == 1 { throw WebSocketError(WebSocketError.protocolError, "close frame with a 1-byte body") }
        let code = UInt16(p[0]) << 8 | UInt16(p[1])
        guard Self.isValidReceivedCloseCode(code) else {
            throw WebSocketError(WebSocketError.protocolError, "invalid close code \(code)")
        }
        let reason = p[2...]
        guard reason.withUnsafeBytes({ UTF8Validation.isValid($0) }) else {
            throw WebSocketError(WebSocketError.invalidPayload, "close reason is not valid UTF-8")
        }
        return .close(code: code, reason: String(decoding: reason, as: UTF8.self))
    }

    /// Codes a peer may put on the wire (1005, 1006 and 1015 are only for local reporting).
    public static func isValidReceivedCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014: return true
        case 3000...4999: return true
        default: return false
        }
    }
}
