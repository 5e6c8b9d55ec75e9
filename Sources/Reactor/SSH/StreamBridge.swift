extension SSHChannel: FlushClosable {}

/// Pipes two ByteStreams into each other with backpressure both ways: when one side's write
/// queue is full, the other side stops reading until it drains. There is no half-close (chisel
/// has none): the first EOF or close on either side ends both, after the surviving side has
/// flushed what it was given. The bridge keeps itself alive until both sides are closed.
///
/// That flush has a deadline (`flushTimeout`): a peer that is alive but not reading would
/// otherwise keep the socket and everything queued for it (up to ~2 MB through a tunnel
/// channel) for as long as it lives.
public final class StreamBridge {
    public let first: ByteStream
    public let second: ByteStream
    public private(set) var bytesFirstToSecond: UInt64 = 0
    public private(set) var bytesSecondToFirst: UInt64 = 0
    /// Also counts the bytes, shared with other bridges (a forward's total).
    public let meter: TrafficMeter?
    /// Called once, when the bridge ends; `error` is the first side's error, if any.
    public var onFinish: ((StreamBridge, ConnectionError?) -> Void)?
    /// Once one side has ended, how long the other may take to send what it still holds
    /// before it is closed and the rest dropped.
    public var flushTimeout: TimeAmount = .seconds(30)

    private var sides: [Side] = []
    private var keepAlive: StreamBridge?
    private var finished = false
    private var closedCount = 0
    private var firstError: ConnectionError?
    private var flushTimer: LoopTimer?

    public init(_ first: ByteStream, _ second: ByteStream, meter: TrafficMeter? = nil) {
        self.first = first
        self.second = second
        self.meter = meter
    }

    /// Takes over both streams' delegates and starts piping.
    public func start() {
        keepAlive = self
        let a = Side(bridge: self, isFirst: true), b = Side(bridge: self, isFirst: false)
        sides = [a, b]
        first.delegate = a
        second.delegate = b
    }

    public var isFinished: Bool { finished }

    fileprivate func read(from isFirst: Bool, _ bytes: UnsafeRawBufferPointer) {
        let (source, target) = isFirst ? (first, second) : (second, first)
        count(UInt64(bytes.count), fromFirst: isFirst)
        target.write(bytes)
        if !target.isWritable { source.pauseReading() }
    }

    fileprivate func read(from isFirst: Bool, vector parts: [UnsafeRawBufferPointer]) {
        let (source, target) = isFirst ? (first, second) : (second, first)
        var n = 0
        for part in parts { n += part.count }
        count(UInt64(n), fromFirst: isFirst)
        target.write(vector: parts)
        if !target.isWritable { source.pauseReading() }
    }

    @inline(__always)
    private func count(_ n: UInt64, fromFirst isFirst: Bool) {
        if isFirst {
            bytesFirstToSecond &+= n
            meter?.firstToSecond &+= n
        } else {
            bytesSecondToFirst &+= n
            meter?.secondToFirst &+= n
        }
    }

    fileprivate func writable(_ isFirst: Bool, _ writable: Bool) {
        // The side that became writable again is the target of the other one's reads.
        if writable { (isFirst ? second : first).resumeReading() }
    }

    fileprivate func endOfStream(from isFirst: Bool) {
        let (source, target) = isFirst ? (first, second) : (second, first)
        closeWhenFlushed(target)
        source.close(nil)
    }

    fileprivate func closed(_ isFirst: Bool, _ error: ConnectionError?) {
        closedCount += 1
        if firstError == nil { firstError = error }
        if closedCount == 1 {
            // Hand over what was read before the close, then end the other side too.
            let other = isFirst ? second : first
            if error == nil { closeWhenFlushed(other) } else { other.close(error) }
        }
        if closedCount >= 2 { finish(firstError) }
    }

    /// Lets `stream` send what it holds, within `flushTimeout`.
    private func closeWhenFlushed(_ stream: ByteStream) {
        guard let f = stream as? FlushClosable else { stream.close(nil); return }
        if flushTimer == nil {
            let timeout = flushTimeout
            flushTimer = stream.loop.schedule(in: timeout) { [weak stream] in
                stream?.close(.timedOut("flushing to a peer that does not read, after the other side ended (\(timeout))"))
            }
        }
        f.closeWhenFlushed()
    }

    private func finish(_ error: ConnectionError?) {
        guard !finished else { return }
        finished = true
        flushTimer?.cancel()
        flushTimer = nil
        let cb = onFinish
        onFinish = nil
        sides = []
        cb?(self, error)
        keepAlive = nil
    }

    private final class Side: ByteStreamDelegate {
        weak var bridge: StreamBridge?
        let isFirst: Bool
        init(bridge: StreamBridge, isFirst: Bool) { self.bridge = bridge; self.isFirst = isFirst }

        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { bridge?.read(from: isFirst, bytes) }
        func stream(_ stream: ByteStream, didReadVector parts: [UnsafeRawBufferPointer]) {
            bridge?.read(from: isFirst, vector: parts)
        }
        func streamDidReadEOF(_ stream: ByteStream) { bridge?.endOfStream(from: isFirst) }
        func stream(_ stream: ByteStream, writabilityChanged writable: Bool) { bridge?.writable(isFirst, writable) }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { bridge?.closed(isFirst, error) }
    }
}
