import CShims
import Glibc
import Logging

/// A non-blocking TCP stream on the loop: connect with a timeout, reads into the loop's shared
/// buffer, writes tried at once and queued on EAGAIN (EPOLLOUT armed only then), water marks
/// that tell the producer to pause and resume, half-close, and close with a reason.
public final class TCPConnection: IOHandler, ByteStream {
    public enum State: Equatable { case connecting, open, closed }

    public unowned let loop: EventLoop
    public let fd: Int32
    public weak var delegate: ByteStreamDelegate?
    public private(set) var state: State
    public private(set) var peer: SocketAddress?
    public var label: String = ""              // e.g. the forward name, for logs

    public var highWaterMark = 256 * 1024
    public var lowWaterMark = 64 * 1024
    public private(set) var isWritable = true   // false between crossing high and falling below low
    public private(set) var bytesRead: UInt64 = 0
    public private(set) var bytesWritten: UInt64 = 0
    public var queuedBytes: Int { writeQueue.count }
    /// ACK each read at once instead of delaying the ACK. For a request/response exchange with a
    /// peer that leaves Nagle on (sshd outside interactive sessions): its small reply waits for
    /// the ACK of its last data, and Linux delays that ACK up to 40 ms once it sees replies.
    /// Linux drops quick-ACK mode by itself, so it is set again after every read.
    public var acknowledgesPromptly = false {
        didSet { if acknowledgesPromptly && !oldValue && state == .open { _ = shim_set_quickack(fd) } }
    }

    private var writeQueue = WriteQueue()
    private var readingPaused = false
    /// Out of epoll after a hangup that arrived while reading was paused (see handleIO).
    /// Whether the peer's FIN has been read, or its hangup parked us out of epoll (see handleIO).
    private enum ReceiveSide { case open, parkedOnHangup, eof }
    private var receiveSide = ReceiveSide.open
    private var readEOF: Bool { receiveSide == .eof }
    private var sendSide = TCPSendSide.open
    private var connectTimer: LoopTimer?

    // MARK: Creating

    /// Wraps an accepted descriptor.
    public init(loop: EventLoop, acceptedFD: Int32, peer: SocketAddress?, delegate: ByteStreamDelegate? = nil) throws(SocketError) {
        self.loop = loop
        self.fd = acceptedFD
        self.peer = peer
        self.delegate = delegate
        self.state = .open
        _ = shim_set_nodelay(fd)
        try loop.register(fd: fd, interest: .readable, handler: self)
        logDebug("open")
    }

    private init(loop: EventLoop, connectingFD: Int32, peer: SocketAddress, delegate: ByteStreamDelegate?) {
        self.loop = loop
        self.fd = connectingFD
        self.peer = peer
        self.delegate = delegate
        self.state = .connecting
    }

    /// Starts connecting to `address`. The delegate hears `connectionDidConnect` or
    /// `didCloseWith` (refused, unreachable, timed out). Writes made before it connects are queued.
    public static func connect(loop: EventLoop, to address: SocketAddress, timeout: TimeAmount,
                               delegate: ByteStreamDelegate, label: String = "") throws(ConnectError) -> TCPConnection {
        let fd: Int32
        do { fd = try Socket.makeTCP(family: address.family) } catch { throw .system(target: "\(address)", error) }
        var storage = address.storage
        let rc = shim_connect(fd, &storage, address.length)
        let err = rc == 0 ? 0 : shim_errno()
        if rc != 0 && err != EINPROGRESS {
            Glibc.close(fd)
            throw ConnectError(target: "\(address)", errno: err)
        }
        let conn = TCPConnection(loop: loop, connectingFD: fd, peer: address, delegate: delegate)
        conn.label = label
        _ = shim_set_nodelay(fd)
        do {
            try loop.register(fd: fd, interest: .writable, handler: conn)
        } catch {
            Glibc.close(fd)
            throw .system(target: "\(address)", error)
        }
        conn.logDebug("connecting")
        conn.connectTimer = loop.schedule(in: timeout) { [weak conn] in
            conn?.close(.connect(.timedOut(target: "\(address)", after: timeout)))
        }
        return conn
    }

    // MARK: Reading

    public func pauseReading() {
        readingPaused = true
        updateInterest()
    }

    public func resumeReading() {
        readingPaused = false
        if receiveSide == .parkedOnHangup {
            // Watched again (see handleIO); the unread input and the EOF are read now.
            receiveSide = .open
            do { try loop.register(fd: fd, interest: [], handler: self) } catch {
                close(.system(SocketError(operation: "epoll_ctl", errno: shim_errno())))
                return
            }
        }
        updateInterest()
    }

    public var isReadingPaused: Bool { readingPaused }

    // MARK: Writing

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard state != .closed, sendSide.acceptsWrites, bytes.count > 0 else { return }
        var offset = 0
        if state == .open && writeQueue.isEmpty {
            // Write now; arm EPOLLOUT only for what the socket did not take.
            while offset < bytes.count {
                let asked = bytes.count - offset
                let n = Glibc.write(fd, bytes.baseAddress! + offset, asked)
                if n > 0 {
                    offset += n
                    if n < asked { break }   // the socket buffer is full: another try would be EAGAIN
                    continue
                }
                let e = shim_errno()
                if n < 0 && e == EINTR { continue }
                if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
                close(.system(SocketError(operation: "write", errno: e)))
                return
            }
            bytesWritten &+= UInt64(offset)
            if offset == bytes.count { return }
        }
        writeQueue.append(UnsafeRawBufferPointer(rebasing: bytes[offset...]), pool: loop.chunkPool)
        if isWritable && writeQueue.count >= highWaterMark {
            isWritable = false
            delegate?.stream(self, writabilityChanged: false)
        }
        updateInterest()
    }

    public func write(vector parts: [UnsafeRawBufferPointer]) {
        guard state != .closed, sendSide.acceptsWrites else { return }
        if parts.count == 1 { write(parts[0]); return }
        var total = 0
        for part in parts { total += part.count }
        guard total > 0 else { return }
        var written = 0
        if state == .open && writeQueue.isEmpty {
            // All pieces with one writev where the socket takes them.
            while written < total {
                let n = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 64) { iov -> Int in
                    var used = 0, skip = written
                    for part in parts where used < 64 {
                        guard skip < part.count, let base = part.baseAddress else { skip -= part.count; continue }
                        iov[used] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base + skip), iov_len: part.count - skip)
                        used += 1
                        skip = 0
                    }
                    return shim_writev(fd, iov.baseAddress, Int32(used))
                }
                if n > 0 { written += n; continue }
                let e = shim_errno()
                if n < 0 && e == EINTR { continue }
                if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
                close(.system(SocketError(operation: "writev", errno: e)))
                return
            }
            bytesWritten &+= UInt64(written)
            if written == total { return }
        }
        var skip = written
        for part in parts {
            if skip >= part.count { skip -= part.count; continue }
            writeQueue.append(UnsafeRawBufferPointer(rebasing: part[skip...]), pool: loop.chunkPool)
            skip = 0
        }
        if isWritable && writeQueue.count >= highWaterMark {
            isWritable = false
            delegate?.stream(self, writabilityChanged: false)
        }
        updateInterest()
    }

    /// Half-close: sends FIN once the queued bytes are out; reading goes on.
    public func shutdownWrite() {
        guard state != .closed else { return }
        perform(sendSide.shutdown(canSendNow: state == .open && writeQueue.isEmpty))
    }

    /// Closes once everything queued has been written.
    public func closeWhenFlushed() {
        guard state != .closed else { return }
        perform(sendSide.closeWhenDrained(canCloseNow: state == .open && writeQueue.isEmpty))
        updateInterest()
    }

    /// Carries out what a send-side transition asks for.
    private func perform(_ action: TCPSendSide.Action) {
        switch action {
        case .none: return
        case .sendFIN: sendFIN()
        case .close: close(nil)
        }
    }

    private func sendFIN() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        logDebug("shutdown write")
        if readEOF { close() }
    }

    // MARK: Closing

    /// Closes now; queued bytes are dropped. `reason` nil means an orderly close.
    public func close(_ reason: ConnectionError?) {
        guard state != .closed else { return }
        state = .closed
        connectTimer?.cancel()
        connectTimer = nil
        loop.deregister(fd: fd)
        Glibc.close(fd)
        writeQueue.release(pool: loop.chunkPool)
        if let reason {
            logDebug("close", ["reason": "\(reason)"])
        } else {
            logDebug("close")
        }
        let d = delegate
        delegate = nil
        d?.stream(self, didCloseWith: reason)
    }

    // MARK: Loop events

    public func handleIO(_ events: IOEvents) {
        if state == .connecting {
            finishConnect()
            return
        }
        if events.contains(.writable) { flush() }
        guard state == .open else { return }
        if events.contains(.error) || (events.contains(.hangup) && readEOF) {
            // Reset, or both directions finished: epoll keeps reporting this, so end it now.
            let err = shim_socket_error(fd)
            if err != 0 { close(.system(SocketError(operation: "socket", errno: err))) } else { close() }
            return
        }
        if events.contains(.hangup) && readingPaused && !readEOF {
            // Both directions are shut but our reader has paused: epoll reports the hangup
            // whatever the interest mask, so the fd leaves epoll until reading resumes instead of
            // waking the loop on every turn.
            loop.deregister(fd: fd)
            receiveSide = .parkedOnHangup
            return
        }
        if events.contains(.readable) || events.contains(.hangup) {
            readAvailable()
        }
    }

    private func finishConnect() {
        let err = shim_socket_error(fd)
        if err != 0 {
            close(.connect(ConnectError(target: peer.map { "\($0)" } ?? "?", errno: err)))
            return
        }
        connectTimer?.cancel()
        connectTimer = nil
        state = .open
        logDebug("connected")
        updateInterest()
        delegate?.streamDidOpen(self)
        if state == .open && !writeQueue.isEmpty { flush() }
    }

    private func readAvailable() {
        // A bounded number of reads per wake-up keeps one busy socket from starving the others.
        for _ in 0..<8 {
            guard state == .open, !readingPaused, !readEOF else { return }
            // A delegate with a buffer of its own gets the bytes there, with no copy.
            let target = delegate as? ByteStreamReadTarget
            let own = target?.readSpace(for: self)
            let buffer = own.flatMap { $0.isEmpty ? nil : $0 } ?? loop.sharedReadBuffer
            guard let start = buffer.baseAddress else { return }
            let n = Glibc.read(fd, start, buffer.count)
            if n > 0 {
                if acknowledgesPromptly { _ = shim_set_quickack(fd) }
                bytesRead &+= UInt64(n)
                if let target, own?.isEmpty == false {
                    target.stream(self, didReadInto: n)
                } else {
                    delegate?.stream(self, didRead: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                }
                if n < buffer.count { return }
            } else if n == 0 {
                receiveSide = .eof
                logDebug("peer shut down write")
                updateInterest()
                if let d = delegate { d.streamDidReadEOF(self) }
                // Both directions are finished (or nobody listens): nothing is left to do.
                if state == .open && (sendSide.isFinSent || delegate == nil) { close(nil) }
                return
            } else {
                let e = shim_errno()
                if e == EAGAIN || e == EWOULDBLOCK { return }
                if e == EINTR { continue }
                close(.system(SocketError(operation: "read", errno: e)))
                return
            }
        }
    }

    private func flush() {
        guard state == .open else { return }
        switch writeQueue.flush(fd: fd, pool: loop.chunkPool) {
        case .failure(let e):
            close(.system(e))
            return
        case .success(let n):
            bytesWritten &+= UInt64(n)
        }
        if !isWritable && writeQueue.count <= lowWaterMark {
            isWritable = true
            delegate?.stream(self, writabilityChanged: true)
            guard state == .open else { return }
        }
        if writeQueue.isEmpty {
            perform(sendSide.drained())
            guard state == .open else { return }
        }
        updateInterest()
    }

    private func updateInterest() {
        guard state != .closed else { return }
        var want: IOEvents = []
        if state == .connecting {
            want = .writable
        } else {
            if !readingPaused && !readEOF { want.insert(.readable) }
            if !writeQueue.isEmpty { want.insert(.writable) }
        }
        loop.setInterest(fd: fd, want)
    }

    private func logDebug(_ what: String, _ extra: Logger.Metadata = [:]) {
        guard loop.logger.logLevel <= .debug else { return }
        var md: Logger.Metadata = ["fd": "\(fd)", "peer": "\(peer.map { "\($0)" } ?? "-")"]
        if !label.isEmpty { md["forward"] = "\(label)" }
        md.merge(extra) { a, _ in a }
        loop.logger.debug("conn \(what)", metadata: md)
    }
}
