/// A bidirectional byte stream on the loop. TCP connections, TLS sessions, a WebSocket used as
/// a stream (chisel) and SSH channels all look like this, so protocols stack on any of them.
public protocol ByteStream: AnyObject {
    var loop: EventLoop { get }
    var delegate: ByteStreamDelegate? { get set }
    /// False between crossing the high-water mark and draining below the low one.
    var isWritable: Bool { get }
    /// Queues bytes (copied before return).
    func write(_ bytes: UnsafeRawBufferPointer)
    /// Sends end-of-stream once queued bytes are out; reading goes on.
    func shutdownWrite()
    /// Closes at once, dropping queued bytes. `reason` nil: an orderly close.
    func close(_ reason: ConnectionError?)
    func pauseReading()
    func resumeReading()
}

extension ByteStream {
    public func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }
    public func write(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { write($0) } }
    public func write(_ text: String) { var t = text; t.withUTF8 { write(UnsafeRawBufferPointer($0)) } }
    public func write(_ buffer: ByteBuffer) { buffer.withReadableBytes { write($0) } }
    public func close() { close(nil) }
}

/// What a stream tells its owner, on the loop thread.
public protocol ByteStreamDelegate: AnyObject {
    /// The stream is ready for data: TCP connected, or TLS handshake done.
    /// Not called for streams that start open (accepted TCP connections).
    func streamDidOpen(_ stream: ByteStream)
    /// Bytes arrived. They may live in a shared buffer: consume or copy them before returning.
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer)
    /// The peer finished sending. The default closes the stream.
    func streamDidReadEOF(_ stream: ByteStream)
    /// Crossed the high-water mark (false) or drained below the low one (true).
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool)
    /// The stream is closed; `error` is nil for an orderly close. Called exactly once.
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?)
}

extension ByteStreamDelegate {
    public func streamDidOpen(_ stream: ByteStream) {}
    public func streamDidReadEOF(_ stream: ByteStream) { stream.close(nil) }
    public func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {}
}
