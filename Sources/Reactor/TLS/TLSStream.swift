import CShims
import Logging

/// TLS over another `ByteStream` (normally a `TCPConnection`), presented as a plaintext
/// `ByteStream`. It becomes the lower stream's delegate and moves bytes between it and a
/// `TLSEngine`. `streamDidOpen` comes when the handshake completes.
///
/// * Writes made before the handshake completes are kept and sent after it.
/// * Writability is the lower stream's; pause/resume pause and resume the lower stream, and
///   records already received are delivered after a resume.
/// * `close(nil)` sends close_notify; the peer's close_notify (or a bare EOF, logged) reaches the
///   delegate as `streamDidReadEOF`. A TCP lower stream is closed once the close_notify (or a
///   fatal alert) is written; any other lower stream is closed right after it is handed over.
/// * A lower stream other than `TCPConnection` and `HostConnection` is taken to be open already.
/// * An open stream keeps itself alive until it closes, like a `TCPConnection` registered
///   with the loop; the delegate stays weak.
public final class TLSStream: ByteStream {
    public enum State: Equatable { case handshaking, open, closed }

    public unowned let loop: EventLoop
    public weak var delegate: ByteStreamDelegate?
    public let lower: ByteStream
    public let engine: TLSEngine
    public private(set) var state: State = .handshaking
    /// Who we talk to, for errors and logs ("127.0.0.1:4433").
    public let peerDescription: String
    public var label: String = ""

    private var keepAlive: TLSStream?
    /// Before `open`: the handshake starts once the lower stream is open (or bytes arrive).
    private enum HandshakeProgress { case waitingForLower, lowerOpen, started }
    private var handshakeProgress: HandshakeProgress
    private var handshakeTimer: LoopTimer?
    private var pendingPlaintext = ByteBuffer()   // written before the handshake completed
    /// Our sending direction: close_notify asked for during the handshake goes out once it is done.
    private enum SendSide { case open, closeNotifyOnceOpen, closeNotifySent }
    private var sendSide = SendSide.open
    private var readingPaused = false
    private var delivering = false
    private var drainScheduled = false
    /// The peer's direction: its ciphertext ended (records may still wait), then EOF went up.
    private enum ReceiveSide { case open, lowerEnded, eofDelivered }
    private var receiveSide = ReceiveSide.open
    private var ownBuffer: UnsafeMutableRawBufferPointer?

    /// Plaintext leaves in chunks this size; each chunk's ciphertext is handed on before the next.
    static let writeChunk = 64 * 1024
    /// How long a closed stream's TCP connection may take to flush close_notify or an alert.
    static let closeFlushLimit = TimeAmount.seconds(5)

    /// Wraps `lower` and starts the handshake as soon as `lower` is open (at once for an open one).
    public init(lower: ByteStream, context: TLSContext, serverName: String? = nil,
                peerDescription: String? = nil, handshakeTimeout: TimeAmount? = .seconds(10),
                delegate: ByteStreamDelegate?) throws(TLSConfigurationError) {
        self.loop = lower.loop
        self.lower = lower
        self.engine = try TLSEngine(context: context, serverName: serverName)
        self.delegate = delegate
        let tcp = lower as? TCPConnection
        let host = lower as? HostConnection
        self.peerDescription = peerDescription ?? tcp?.peer.map { "\($0)" } ?? host.map { "\($0.host):\($0.port)" }
            ?? serverName ?? "peer"
        let lowerOpen = host.map { $0.connection?.state == .open } ?? tcp.map { $0.state == .open } ?? true
        self.handshakeProgress = lowerOpen ? .lowerOpen : .waitingForLower
        if tcp?.state == .closed {
            throw TLSConfigurationError("TLS over \(self.peerDescription): the connection is already closed")
        }
        lower.delegate = self
        keepAlive = self
        if let timeout = handshakeTimeout {
            handshakeTimer = loop.schedule(in: timeout) { [weak self] in
                guard let self, self.state == .handshaking else { return }
                self.close(.tls(.handshakeTimedOut(peer: self.peerDescription, after: timeout)))
            }
        }
        // Start on the next loop phase so no delegate call happens inside init.
        loop.deferred { [weak self] in self?.startHandshakeIfReady() }
    }

    deinit { ownBuffer?.deallocate() }

    /// Connects TCP to `address`, then runs TLS over it. `serverName` (default: the IP) is
    /// sent as SNI and checked against the certificate. `timeout` bounds connect + handshake.
    public static func connect(loop: EventLoop, to address: SocketAddress, serverName: String? = nil,
                               context: TLSContext, timeout: TimeAmount = .seconds(10),
                               delegate: ByteStreamDelegate, label: String = "") throws(ConnectionError) -> TLSStream {
        let placeholder = Placeholder()
        let tcp: TCPConnection
        do {
            tcp = try TCPConnection.connect(loop: loop, to: address, timeout: timeout, delegate: placeholder, label: label)
        } catch {
            throw .connect(error)
        }
        do {
            let tls = try TLSStream(lower: tcp, context: context, serverName: serverName ?? address.ip,
                                    peerDescription: "\(address)", handshakeTimeout: timeout, delegate: delegate)
            tls.label = label
            return tls
        } catch {
            tcp.close(.closedLocally("TLS setup failed"))
            throw .tls(.setup(peer: "\(address)", reason: error.message))
        }
    }

    /// Resolves `host` without blocking (see `HostConnection`), connects, then runs TLS with
    /// `host` as the server name unless `serverName` says otherwise.
    public static func connect(loop: EventLoop, resolver: Resolver, host: String, port: Int,
                               serverName: String? = nil, context: TLSContext, timeout: TimeAmount = .seconds(10),
                               delegate: ByteStreamDelegate, label: String = "") throws(ConnectionError) -> TLSStream {
        let connection = HostConnection(loop: loop, resolver: resolver, host: host, port: port, timeout: timeout,
                                        delegate: nil, label: label)
        do {
            let tls = try TLSStream(lower: connection, context: context, serverName: serverName ?? host,
                                    handshakeTimeout: timeout, delegate: delegate)
            tls.label = label
            return tls
        } catch {
            connection.close(.closedLocally("TLS setup failed"))
            throw .tls(.setup(peer: "\(host):\(port)", reason: error.message))
        }
    }

    /// Same, building a one-off context from `configuration` (prefer a shared `TLSContext`).
    public static func connect(loop: EventLoop, to address: SocketAddress, serverName: String? = nil,
                               configuration: TLSConfiguration, timeout: TimeAmount = .seconds(10),
                               delegate: ByteStreamDelegate, label: String = "") throws(ConnectionError) -> TLSStream {
        let context: TLSContext
        do { context = try TLSContext(configuration) } catch { throw .tls(.setup(peer: "\(address)", reason: "\(error)")) }
        return try connect(loop: loop, to: address, serverName: serverName, context: context,
                           timeout: timeout, delegate: delegate, label: label)
    }

    /// Server side: wraps a descriptor from `TCPListener` and waits for the client's hello.
    public static func accept(loop: EventLoop, fd: Int32, peer: SocketAddress?, context: TLSContext,
                              handshakeTimeout: TimeAmount? = .seconds(10),
                              delegate: ByteStreamDelegate?) throws(ConnectionError) -> TLSStream {
        let tcp: TCPConnection
        do { tcp = try TCPConnection(loop: loop, acceptedFD: fd, peer: peer) } catch { throw .system(error) }
        do {
            return try TLSStream(lower: tcp, context: context, handshakeTimeout: handshakeTimeout, delegate: delegate)
        } catch {
            tcp.close(.closedLocally("TLS setup failed"))
            throw .tls(.setup(peer: peer.map { "\($0)" } ?? "?", reason: error.message))
        }
    }

    // MARK: What was negotiated

    public var protocolVersion: TLSVersion? { engine.protocolVersion }
    public var alpnProtocol: String? { engine.alpnProtocol }

    // MARK: ByteStream

    public var isWritable: Bool { state != .closed && lower.isWritable }
    public var queuedBytes: Int { pendingPlaintext.readableBytes + lower.queuedBytes }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, sendSide == .open else { return }
        switch state {
        case .closed: return
        case .handshaking: pendingPlaintext.append(bytes)
        case .open: encrypt(bytes)
        }
    }

    /// Sends close_notify (after queued data) and half-closes the lower stream; reading goes on.
    public func shutdownWrite() {
        guard state != .closed, sendSide != .closeNotifySent else { return }
        if state == .handshaking { sendSide = .closeNotifyOnceOpen; return }
        sendSide = .closeNotifySent
        engine.closeNotify()
        flushCiphertext()
        guard state == .open else { return }
        lower.shutdownWrite()
        if receiveSide == .eofDelivered && state == .open { close() }
    }

    public func pauseReading() {
        readingPaused = true
        lower.pauseReading()
    }

    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        lower.resumeReading()
        // Records already received but not yet decrypted: deliver them outside the caller's frame.
        guard !drainScheduled, state == .open else { return }
        drainScheduled = true
        loop.deferred { [weak self] in
            guard let self else { return }
            self.drainScheduled = false
            self.readPlaintext()
        }
    }

    /// Closes now. `nil`: orderly, with close_notify. An error: any alert OpenSSL queued (e.g.
    /// "bad certificate") still goes out before the connection is dropped.
    public func close(_ reason: ConnectionError?) {
        finish(reason, lowerIsClosed: false)
    }

    // MARK: Handshake

    private func startHandshakeIfReady() {
        guard state == .handshaking, handshakeProgress == .lowerOpen else { return }
        handshakeProgress = .started
        advanceHandshake()
    }

    private func advanceHandshake() {
        switch engine.handshake() {
        case .inProgress:
            flushCiphertext()
        case .complete:
            flushCiphertext()
            guard state == .handshaking else { return }
            handshakeCompleted()
        case .failed(let why):
            let error: TLSError = engine.failedVerifyResult.map { .verify(peer: peerDescription, TLSVerifyFailure(code: $0, reason: why)) }
                ?? .handshake(peer: peerDescription, reason: why)
            close(.tls(error))
        }
    }

    private func handshakeCompleted() {
        state = .open
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if loop.logger.logLevel <= .debug {
            loop.logger.debug("tls open", metadata: [
                "peer": "\(peerDescription)", "label": "\(label)", "version": "\(engine.protocolVersion.map { "\($0)" } ?? "?")",
                "cipher": "\(engine.cipherName ?? "?")", "alpn": "\(engine.alpnProtocol ?? "-")",
            ])
        }
        delegate?.streamDidOpen(self)
        guard state == .open else { return }
        if !pendingPlaintext.isEmpty {
            let pending = pendingPlaintext
            pendingPlaintext = ByteBuffer()
            pending.withReadableBytes { encrypt($0) }
            guard state == .open else { return }
        }
        if sendSide == .closeNotifyOnceOpen {
            sendSide = .open
            shutdownWrite()
        }
        // Records that came with the peer's last handshake flight (0.5-RTT data, tickets).
        readPlaintext()
    }

    // MARK: Data path

    private func encrypt(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count, state == .open {
            let end = min(offset + Self.writeChunk, bytes.count)
            if let why = engine.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<end])) {
                close(.tls(.session(peer: peerDescription, reason: why)))
                return
            }
            flushCiphertext()
            offset = end
        }
    }

    private func flushCiphertext() {
        engine.drainCiphertext { lower.write($0) }
    }

    /// Where decrypted bytes land. The loop's shared read buffer is free once the ciphertext
    /// is copied into the engine, when the lower stream is one that finishes with its own read
    /// buffer before calling us (TCP, HostConnection that passes TCP reads through, TLS). Other streams may still be walking that buffer
    /// (several frames from one read), so we use a buffer of our own for them.
    private var plaintextBuffer: UnsafeMutableRawBufferPointer {
        if lower is TCPConnection || lower is HostConnection || lower is TLSStream { return loop.sharedReadBuffer }
        if let b = ownBuffer { return b }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024 + 256, alignment: 16)
        ownBuffer = b
        return b
    }

    /// Decrypts what the engine holds and hands it up, filling the buffer before each call.
    private func readPlaintext() {
        guard !delivering else { return }   // re-entered from a delegate: the outer loop goes on
        delivering = true
        defer { delivering = false }
        while state == .open && !readingPaused && receiveSide != .eofDelivered {
            if engine.receivedCloseNotify {   // seen while paused
                peerFinishedSending(cleanly: true)
                return
            }
            let buffer = plaintextBuffer
            var filled = 0
            var outcome = TLSEngine.ReadResult.bytes(0)
            while filled < buffer.count {
                outcome = engine.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                guard case .bytes(let n) = outcome else { break }
                filled += n
            }
            if engine.pendingCiphertextCount > 0 { flushCiphertext() }   // alerts, key-update replies
            if filled > 0 {
                delegate?.stream(self, didRead: UnsafeRawBufferPointer(rebasing: buffer[0..<filled]))
            }
            guard state == .open else { return }
            switch outcome {
            case .bytes:
                continue   // the buffer filled up; more may be waiting
            case .needCiphertext:
                if receiveSide == .lowerEnded && !readingPaused { peerFinishedSending(cleanly: false) }
                return
            case .closeNotify:
                if !readingPaused { peerFinishedSending(cleanly: true) }
                return
            case .failed(let why):
                close(.tls(.session(peer: peerDescription, reason: why)))
                return
            }
        }
    }

    private func peerFinishedSending(cleanly: Bool) {
        guard receiveSide != .eofDelivered, state == .open else { return }
        receiveSide = .eofDelivered
        if !cleanly {
            // Common from HTTP servers; only a problem for protocols without their own framing.
            loop.logger.debug("tls peer closed without close_notify", metadata: ["peer": "\(peerDescription)"])
        }
        if let d = delegate { d.streamDidReadEOF(self) }
        // Both directions are finished (or nobody listens): nothing is left to do. (As TCPConnection.)
        if state == .open && (sendSide == .closeNotifySent || delegate == nil) { close() }
    }

    // MARK: Closing

    private func finish(_ reason: ConnectionError?, lowerIsClosed: Bool) {
        guard state != .closed else { return }
        withExtendedLifetime(self) {
            let wasOpen = state == .open
            state = .closed
            handshakeTimer?.cancel()
            handshakeTimer = nil
            pendingPlaintext = ByteBuffer()
            if !lowerIsClosed {
                if reason == nil && wasOpen { engine.closeNotify() }
                lower.delegate = nil
                engine.drainCiphertext { lower.write($0) }   // close_notify or a fatal alert
                // TCP underneath (directly or via HostConnection): let it flush, then close.
                if let tcp = (lower as? TCPConnection) ?? (lower as? HostConnection)?.connection, tcp.state == .open {
                    tcp.closeWhenFlushed()
                    if tcp.state != .closed {
                        // A peer that stops reading must not hold the socket open forever.
                        loop.schedule(in: Self.closeFlushLimit) { [weak tcp] in
                            tcp?.close(.closedLocally("TLS close: peer did not take our last bytes within \(Self.closeFlushLimit)"))
                        }
                    }
                } else {
                    lower.close(reason)
                }
            }
            if loop.logger.logLevel <= .debug {
                loop.logger.debug("tls close", metadata: ["peer": "\(peerDescription)", "label": "\(label)", "reason": "\(reason.map { "\($0)" } ?? "-")"])
            }
            let d = delegate
            delegate = nil
            d?.stream(self, didCloseWith: reason)
            keepAlive = nil
        }
    }
}

// MARK: The lower stream's events

extension TLSStream: ByteStreamDelegate {
    public func streamDidOpen(_ stream: ByteStream) {
        if handshakeProgress == .waitingForLower { handshakeProgress = .lowerOpen }
        startHandshakeIfReady()
    }

    public func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        guard state != .closed else { return }
        engine.receiveCiphertext(bytes)
        if state == .handshaking {
            handshakeProgress = .started
            advanceHandshake()   // on completion this reads any records that came with it
        } else {
            readPlaintext()
        }
    }

    public func streamDidReadEOF(_ stream: ByteStream) {
        switch state {
        case .closed:
            return
        case .handshaking:
            close(.tls(.closedDuringHandshake(peer: peerDescription)))
        case .open:
            if receiveSide == .open { receiveSide = .lowerEnded }   // never back from eofDelivered
            // Undelivered records go up first (after a resume, if paused); then the EOF.
            if !readingPaused { readPlaintext() }
        }
    }

    public func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        guard state == .open else { return }
        delegate?.stream(self, writabilityChanged: writable)
    }

    public func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        guard state != .closed else { return }
        if state == .handshaking && error == nil {
            finish(.tls(.closedDuringHandshake(peer: peerDescription)), lowerIsClosed: true)
        } else {
            finish(error, lowerIsClosed: true)
        }
    }
}

/// Stands in as the TCP delegate between `TCPConnection.connect` and `TLSStream.init`.
private final class Placeholder: ByteStreamDelegate {
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
}
