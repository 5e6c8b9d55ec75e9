/// A WebSocket seen as a byte stream (how chisel carries SSH): writes go out as binary messages
/// of at most `maxMessageBytes` each; every received message, binary or text, is handed on as
/// bytes. Message boundaries mean nothing. A close frame from the peer reads as end-of-stream.
public final class WebSocketStream: OverwritingWriter {
    public let connection: WebSocketConnection
    public weak var delegate: ByteStreamDelegate?
    private var closed = false

    public var loop: EventLoop { connection.loop }
    public var isWritable: Bool { connection.isWritable }
    public var queuedBytes: Int { connection.queuedBytes }

    public init(_ connection: WebSocketConnection, delegate: ByteStreamDelegate? = nil) {
        self.connection = connection
        self.delegate = delegate
        connection.onBinaryBatch = { [weak self] parts in self?.deliver(parts) }
        connection.onText = { [weak self] text in Array(text.utf8).withUnsafeBytes { self?.deliver($0) } }
        connection.onWritabilityChanged = { [weak self] w in if let self { self.delegate?.stream(self, writabilityChanged: w) } }
        connection.onClose = { [weak self] code, reason, error in self?.connectionClosed(code, reason, error) }
    }

    private func deliver(_ bytes: UnsafeRawBufferPointer) {
        guard !closed, !bytes.isEmpty else { return }
        delegate?.stream(self, didRead: bytes)
    }

    /// A read's messages as one vector, in place where the reader can take them so (SSH decrypts
    /// them where they lie and decodes them together).
    private func deliver(_ parts: [UnsafeMutableRawBufferPointer]) {
        guard !closed, let d = delegate else { return }
        if let inPlace = d as? InPlaceReader {
            inPlace.stream(self, didReadInPlace: parts)
        } else if parts.count == 1 {
            deliver(UnsafeRawBufferPointer(parts[0]))
        } else {
            d.stream(self, didReadVector: parts.map { UnsafeRawBufferPointer($0) })
        }
    }

    private func connectionClosed(_ code: UInt16?, _ reason: String, _ error: ConnectionError?) {
        guard !closed else { return }
        closed = true
        let d = delegate
        delegate = nil
        if let error {
            d?.stream(self, didCloseWith: error)
        } else if let code, code != 1000, code != 1001, code != 1005 {
            d?.stream(self, didCloseWith: .protocolViolation("WebSocket closed with \(code) \(reason)"))
        } else {
            d?.stream(self, didCloseWith: nil)
        }
    }

    /// Large writes are cut up so that no peer has to buffer a huge message (servers often limit
    /// message size to 1 MiB; chisel's own server sends messages of about 28 KB). 512 KiB holds
    /// a whole flush of SSH output (at most 256 KiB and one packet), so no packet is cut between
    /// messages and the receiver decrypts every one where it lies.
    public var maxMessageBytes = 512 * 1024

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closed, bytes.count > 0 else { return }
        var offset = 0
        while offset < bytes.count && !closed {
            let n = min(maxMessageBytes, bytes.count - offset)
            connection.sendBinary(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
            offset += n
        }
    }

    /// Like `write`, with the payload masked in place and the frames sent in one write.
    public func write(overwriting bytes: UnsafeMutableRawBufferPointer) {
        guard !closed, bytes.count > 0 else { return }
        connection.sendBinary(overwriting: bytes, maxMessageBytes: maxMessageBytes)
    }

    /// Starts the close handshake (a WebSocket has no half-close).
    public func shutdownWrite() { connection.close(code: 1000) }

    public func close(_ reason: ConnectionError?) {
        guard !closed else { return }
        closed = true
        let d = delegate
        delegate = nil
        connection.onClose = nil
        connection.close(code: reason == nil ? 1000 : 1011, reason: reason.map { String("\($0)".prefix(100)) } ?? "")
        d?.stream(self, didCloseWith: reason)
    }

    public func pauseReading() { connection.stream.pauseReading() }
    public func resumeReading() { connection.stream.resumeReading() }
}
