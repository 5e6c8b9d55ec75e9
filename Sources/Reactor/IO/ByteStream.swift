/// A bidirectional byte stream on the loop. TCP connections, TLS sessions, a WebSocket used as
/// a stream (chisel) and SSH channels all look like this, so protocols stack on any of them.
public protocol ByteStream: AnyObject {
    var loop: EventLoop { get }
    var delegate: ByteStreamDelegate? { get set }
    /// False between crossing the high-water mark and draining below the low one.
    var isWritable: Bool { get }
    /// Bytes accepted by `write` and not yet handed to the layer below (for TLS, the socket's
    /// queue included): what a slow reader costs this process.
    var queuedBytes: Int { get }
    /// Queues bytes (copied before return).
    func write(_ bytes: UnsafeRawBufferPointer)
    /// Queues several pieces as one run of bytes (copied before return); TCP sends them with
    /// one writev. The default writes them one by one.
    func write(vector parts: [UnsafeRawBufferPointer])
    /// Sends end-of-stream once queued bytes are out; reading goes on.
    func shutdownWrite()
    /// Closes at once, dropping queued bytes. `reason` nil: an orderly close.
    func close(_ reason: ConnectionError?)
    func pauseReading()
    func resumeReading()
}

extension ByteStream {
    public func write(vector parts: [UnsafeRawBufferPointer]) {
        for part in parts where !part.isEmpty { write(part) }
    }
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
    /// Bytes arrived in several pieces that follow each other in the stream (an SSH channel's
    /// packets from one read, left where they were decrypted); like `didRead` otherwise. The
    /// default hands each piece to `didRead`.
    func stream(_ stream: ByteStream, didReadVector parts: [UnsafeRawBufferPointer])
    /// The peer finished sending. The default closes the stream.
    func streamDidReadEOF(_ stream: ByteStream)
    /// Crossed the high-water mark (false) or drained below the low one (true).
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool)
    /// The stream is closed; `error` is nil for an orderly close. Called exactly once.
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?)
}

extension ByteStreamDelegate {
    public func stream(_ stream: ByteStream, didReadVector parts: [UnsafeRawBufferPointer]) {
        for part in parts where !part.isEmpty { self.stream(stream, didRead: part) }
    }
    public func streamDidOpen(_ stream: ByteStream) {}
    public func streamDidReadEOF(_ stream: ByteStream) { stream.close(nil) }
    public func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {}
}

/// A delegate that keeps unfinished input in a buffer of its own (an SSH packet decoder) has
/// the stream read straight into that buffer, which spares copying every byte out of the
/// loop's shared read buffer. TCP streams, and wrappers that pass their reads through, ask.
public protocol ByteStreamReadTarget: ByteStreamDelegate {
    /// Where the next read should land. Empty: not now; the stream then reads into the shared
    /// buffer and calls `didRead`.
    func readSpace(for stream: ByteStream) -> UnsafeMutableRawBufferPointer
    /// `count` bytes were read into the start of the space `readSpace` returned last.
    func stream(_ stream: ByteStream, didReadInto count: Int)
}

/// A stream that can finish sending what it has queued and then close (`close` drops it).
public protocol FlushClosable: AnyObject {
    func closeWhenFlushed()
}

extension TCPConnection: FlushClosable {}
extension HostConnection: FlushClosable {}

/// A delegate that may change received bytes where they lie (an SSH decoder decrypts them in
/// place). A stream whose read buffer is its own to give (a WebSocket's decoder buffer, whose
/// messages it no longer needs) hands them over this way, without a copy.
public protocol InPlaceReader: ByteStreamDelegate {
    /// Pieces that follow each other in the stream, valid during the call only.
    func stream(_ stream: ByteStream, didReadInPlace parts: [UnsafeMutableRawBufferPointer])
}

/// A stream that sends `write(vector:)` with one system call (TCP's writev), so a caller may
/// hand it headers and payloads where they lie instead of joining them first.
public protocol GatheringWriter: ByteStream {}

extension TCPConnection: GatheringWriter {}
extension HostConnection: GatheringWriter {}

/// A stream that may change the bytes it is given while it sends them (a WebSocket client
/// masks them in place), which spares a copy. The caller hands over scratch it no longer needs.
public protocol OverwritingWriter: ByteStream {
    func write(overwriting bytes: UnsafeMutableRawBufferPointer)
}

/// A stream over TCP that can ACK reads at once for a while (see `TCPConnection`).
public protocol PromptAcknowledging: AnyObject {
    var acknowledgesPromptly: Bool { get set }
}

extension TCPConnection: PromptAcknowledging {}
extension HostConnection: PromptAcknowledging {}
