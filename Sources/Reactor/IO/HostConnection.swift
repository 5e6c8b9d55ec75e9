/// A TCP stream to a host *name*: resolves without blocking the loop, then tries each address
/// in turn until one connects, all within one overall timeout. Until then writes are kept and
/// sent on connect. To its delegate it looks like any other ByteStream.
public final class HostConnection: ByteStream, ByteStreamReadTarget {
    public let loop: EventLoop
    public weak var delegate: ByteStreamDelegate?
    public let host: String
    public let port: Int
    public var label = ""
    public private(set) var connection: TCPConnection?

    private let resolver: Resolver
    private let deadline: Deadline
    private var candidates: [SocketAddress] = []
    private var pending = ByteBuffer()
    private var wantShutdown = false
    private var wantCloseWhenFlushed = false
    private var readingPaused = false
    private var closed = false
    private var lastError: ConnectionError?
    private var timer: LoopTimer?

    /// Starts resolving and connecting; the delegate hears `streamDidOpen` or `didCloseWith`.
    public init(loop: EventLoop, resolver: Resolver, host: String, port: Int, timeout: TimeAmount,
                delegate: ByteStreamDelegate?, label: String = "") {
        self.loop = loop
        self.resolver = resolver
        self.host = host
        self.port = port
        self.delegate = delegate
        self.label = label
        self.deadline = Deadline.now() + timeout
        timer = loop.schedule(at: deadline) { [weak self] in
            self?.finish(.connect(.timedOut(target: "\(host):\(port)", after: timeout)))
        }
        resolver.resolve(host: host, port: port) { [weak self] result in
            guard let self, !self.closed else { return }
            switch result {
            case .success(let addrs):
                self.candidates = addrs
                self.tryNext()
            case .failure(let e):
                self.finish(.connect(.resolve(target: "\(host):\(port)", UnderlyingError(e))))
            }
        }
    }

    public var queuedBytes: Int { connection?.queuedBytes ?? pending.readableBytes }
    public var isWritable: Bool { connection?.isWritable ?? (pending.readableBytes < 256 * 1024) }

    /// Passed to the TCP connection once there is one.
    public var acknowledgesPromptly = false {
        didSet { connection?.acknowledgesPromptly = acknowledgesPromptly }
    }
    public var peer: SocketAddress? { connection?.peer }

    private func tryNext() {
        guard !closed else { return }
        guard !candidates.isEmpty else {
            finish(lastError ?? .connect(.noAddress(target: "\(host):\(port)")))
            return
        }
        let address = candidates.removeFirst()
        let remaining = deadline - Deadline.now()
        do {
            let c = try TCPConnection.connect(loop: loop, to: address, timeout: remaining, delegate: self, label: label)
            connection = c
            c.acknowledgesPromptly = acknowledgesPromptly
        } catch {
            lastError = .connect(error)
            tryNext()
        }
    }

    private func finish(_ error: ConnectionError?) {
        guard !closed else { return }
        closed = true
        timer?.cancel()
        timer = nil
        let c = connection
        connection = nil
        c?.delegate = nil
        c?.close(error)
        let d = delegate
        delegate = nil
        d?.stream(self, didCloseWith: error)
    }

    // MARK: ByteStream

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closed else { return }
        if let c = connection, c.state == .open { c.write(bytes) } else { pending.append(bytes) }
    }

    public func write(vector parts: [UnsafeRawBufferPointer]) {
        guard !closed else { return }
        if let c = connection, c.state == .open { c.write(vector: parts) } else { for p in parts { pending.append(p) } }
    }

    public func shutdownWrite() {
        if let c = connection, c.state == .open { c.shutdownWrite() } else { wantShutdown = true }
    }

    public func close(_ reason: ConnectionError?) { finish(reason) }

    /// Sends everything written so far, then closes; before the connection is up, that happens
    /// once it opens. (`close` drops what is still queued.)
    public func closeWhenFlushed() {
        guard !closed else { return }
        if let c = connection, c.state == .open { c.closeWhenFlushed() } else { wantCloseWhenFlushed = true }
    }

    public func pauseReading() {
        readingPaused = true
        connection?.pauseReading()
    }

    public func resumeReading() {
        readingPaused = false
        connection?.resumeReading()
    }

    // MARK: ByteStreamDelegate (the TCP connection underneath)

    public func streamDidOpen(_ stream: ByteStream) {
        timer?.cancel()
        timer = nil
        guard let c = connection else { return }
        if readingPaused { c.pauseReading() }
        if !pending.isEmpty {
            c.write(pending)
            pending = ByteBuffer()
        }
        if wantShutdown { c.shutdownWrite() }
        if wantCloseWhenFlushed { c.closeWhenFlushed() }
        delegate?.streamDidOpen(self)
    }

    public func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        delegate?.stream(self, didRead: bytes)
    }

    // Reads go straight into our delegate's buffer if it has one.
    public func readSpace(for stream: ByteStream) -> UnsafeMutableRawBufferPointer {
        (delegate as? ByteStreamReadTarget)?.readSpace(for: self) ?? loop.sharedReadBuffer
    }

    public func stream(_ stream: ByteStream, didReadInto count: Int) {
        if let target = delegate as? ByteStreamReadTarget {
            target.stream(self, didReadInto: count)
        } else {
            delegate?.stream(self, didRead: UnsafeRawBufferPointer(rebasing: loop.sharedReadBuffer[0..<count]))
        }
    }

    public func streamDidReadEOF(_ stream: ByteStream) {
        if let d = delegate { d.streamDidReadEOF(self) } else { stream.close(nil) }
    }

    public func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        delegate?.stream(self, writabilityChanged: writable)
    }

    public func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        guard !closed else { return }
        connection = nil
        // Before it opened (the timer still runs), a refused address is not the end while
        // others remain (IPv6 then IPv4, say).
        if let e = error, timer != nil, !candidates.isEmpty {
            lastError = e
            tryNext()
            return
        }
        finish(error)
    }
}
