/// What a channel needs from the connection that carries it.
protocol SSHChannelHost: AnyObject {
    var loop: EventLoop { get }
    /// False while the link below is congested or a key exchange holds our packets.
    var canSendChannelData: Bool { get }
    /// Sends one connection-layer message built in place.
    func channelSend(_ build: (inout [UInt8]) -> Void)
    /// Both sides have sent CLOSE: the channel number can be reused.
    func channelDidFinish(_ channel: SSHChannel)
    /// True while a batch of input (one read) is being decoded: data is then collected where it
    /// lies and handed on once per batch (`deliverBatch`), so the consumer writes it with one
    /// system call and no copy. The collected bytes are valid only until the batch ends.
    var collectsChannelData: Bool { get }
    /// The channel collected its first data of this batch: call its `deliverBatch` at the end.
    func channelHasCollectedData(_ channel: SSHChannel)
    /// Counts batches of input; a channel notes the one its last data came in.
    var receiveBatch: UInt64 { get }
    /// True while a key re-exchange waits for windows to drain, or runs: no window adjusts.
    var holdsWindowAdjusts: Bool { get }
}

/// One SSH channel (RFC 4254 section 5) seen as a `ByteStream`. Flow control: we grant the
/// peer `initialWindow` bytes and top it up once a quarter has been delivered to our delegate,
/// but never while reading is paused (so a slow consumer stops the peer); our writes go out
/// as the peer's window allows and queue otherwise, with water marks for `isWritable`.
public final class SSHChannel: ByteStream {
    public let localID: UInt32
    public private(set) var remoteID: UInt32
    public let type: String
    public weak var delegate: ByteStreamDelegate?
    public var loop: EventLoop { host?.loop ?? fallbackLoop }
    private let fallbackLoop: EventLoop
    weak var host: SSHChannelHost?

    public var highWaterMark = 256 * 1024
    public var lowWaterMark = 64 * 1024
    public private(set) var isWritable = true
    public private(set) var bytesRead: UInt64 = 0
    public private(set) var bytesWritten: UInt64 = 0

    let initialWindow: UInt32
    let maxPacketIn: UInt32
    private(set) var remoteWindow: UInt64
    private var remoteMaxPacket: Int
    private(set) var localWindow: UInt32
    private var consumed: UInt32 = 0
    /// The host's `receiveBatch` when data last arrived.
    private(set) var lastDataBatch: UInt64 = 0
    private var pendingOut = ByteBuffer()
    /// Received data kept aside (copied) while it cannot be handed on: reading paused, or a
    /// delivery in progress. Comes after `batch`, which is empty whenever this is not.
    private var pendingIn = ByteBuffer()
    /// This batch's data, in the connection's receive buffer (see `SSHChannelHost`).
    private var batch: [UnsafeRawBufferPointer] = []
    private var batchSpare: [UnsafeRawBufferPointer] = []
    private var batchBytes = 0
    private var paused = false
    private(set) var sendSide = SSHChannelSendSide.open
    private(set) var receiveSide = SSHChannelReceiveSide.open
    /// The delegate has heard the close (it hears nothing after).
    private var notifiedClose = false
    private var delivering = false

    init(host: SSHChannelHost, loop: EventLoop, type: String, localID: UInt32, remoteID: UInt32, remoteWindow: UInt32,
         remoteMaxPacket: UInt32, initialWindow: UInt32, maxPacket: UInt32) {
        self.host = host
        self.fallbackLoop = loop
        self.type = type
        self.localID = localID
        self.remoteID = remoteID
        self.remoteWindow = UInt64(remoteWindow)
        self.remoteMaxPacket = max(1, Int(min(remoteMaxPacket, 1 << 20)))
        self.initialWindow = initialWindow
        self.localWindow = initialWindow
        self.maxPacketIn = maxPacket
    }

    public var isClosed: Bool { notifiedClose }
    public var queuedBytes: Int { pendingOut.readableBytes }

    // MARK: ByteStream

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard sendSide.acceptsData, !notifiedClose, bytes.count > 0 else { return }
        var offset = 0
        if pendingOut.isEmpty {
            offset = sendNow(bytes)
        }
        if offset < bytes.count {
            pendingOut.append(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            // Held back by the connection's full output (not the peer's window): the writer
            // stops now, or its next read would be queued here and copied a second time later.
            let outputFull = remoteWindow > 0 && host?.canSendChannelData == false
            if isWritable && (pendingOut.readableBytes >= highWaterMark || outputFull) {
                isWritable = false
                delegate?.stream(self, writabilityChanged: false)
            }
        }
    }

    public func shutdownWrite() {
        guard !notifiedClose else { return }
        perform(sendSide.shutdown(drained: pendingOut.isEmpty))
    }

    /// Closes once queued data has gone out (no half-close in between).
    public func closeWhenFlushed() {
        guard !notifiedClose else { return }
        perform(sendSide.closeWhenDrained(drained: pendingOut.isEmpty))
    }

    public func close(_ reason: ConnectionError?) {
        guard !notifiedClose else { return }
        pendingOut.clear()
        sendCloseIfNeeded()
        finishIfDone()
        notifyClose(reason)
    }

    public func pauseReading() { paused = true }

    public func resumeReading() {
        guard paused else { return }
        paused = false
        deliverPending()
        if !paused { maybeAdjustWindow() }
    }

    // MARK: From the connection

    func receiveData(_ bytes: UnsafeRawBufferPointer) throws {
        guard !receiveSide.isFinished else { throw SSHError.protocolError("channel \(localID): data after EOF/CLOSE") }
        guard bytes.count <= Int(localWindow) else {
            throw SSHError.protocolError("channel \(localID): peer sent \(bytes.count) bytes with only \(localWindow) bytes of window")
        }
        localWindow -= UInt32(bytes.count)
        lastDataBatch = host?.receiveBatch ?? 0
        guard !notifiedClose, !bytes.isEmpty else { return }
        bytesRead &+= UInt64(bytes.count)
        if paused || delivering || !pendingIn.isEmpty {
            keepAside(bytes)
            return
        }
        if let host, host.collectsChannelData {
            if batch.isEmpty { host.channelHasCollectedData(self) }
            batch.append(bytes)
            batchBytes += bytes.count
            return
        }
        consumed += UInt32(bytes.count)
        delivering = true
        delegate?.stream(self, didRead: bytes)
        delivering = false
        if !pendingIn.isEmpty && !paused { deliverPending() }
        maybeAdjustWindow()
    }

    func receiveWindowAdjust(_ n: UInt32) throws {
        remoteWindow += UInt64(n)
        guard remoteWindow <= UInt64(UInt32.max) else {
            throw SSHError.protocolError("channel \(localID): window adjust overflows 2^32-1")
        }
        flushPending()
    }

    func receiveEOF() {
        if receiveSide == .open { receiveSide = .eofReceived }
        guard !notifiedClose else { return }
        if pendingIn.isEmpty && batch.isEmpty {
            if let d = delegate { d.streamDidReadEOF(self) } else { close(nil) }
        }
    }

    func receiveClose() {
        // What the peer sent before its CLOSE (in the same read, or held while paused) still
        // goes to the delegate, as a TCP stream's data does before its end, and its EOF too.
        if !notifiedClose && !(batch.isEmpty && pendingIn.isEmpty) {
            paused = false
            deliverBatch()
        }
        receiveSide = .closeReceived
        pendingOut.clear()
        sendCloseIfNeeded()
        finishIfDone()
        notifyClose(nil)
    }

    func connectionDidClose(_ error: ConnectionError?) {
        _ = sendSide.sendClose()   // nothing can go out any more
        receiveSide = .closeReceived
        notifyClose(error ?? .closedLocally("ssh connection closed"))
    }

    /// Sends queued data as far as the window and the link allow.
    func flushPending() {
        guard !pendingOut.isEmpty, !sendSide.isCloseSent else { return }
        let taken = pendingOut.withReadableBytes { sendNow($0) }
        pendingOut.moveReaderIndex(by: taken)
        if pendingOut.isEmpty {
            pendingOut.releaseMemory()
            while true {
                let action = sendSide.drained()
                if action == .none { break }
                perform(action)
                if action == .close { return }
            }
        }
        if !isWritable && pendingOut.readableBytes <= lowWaterMark {
            isWritable = true
            delegate?.stream(self, writabilityChanged: true)
        }
    }

    // MARK: Internals

    /// Sends what window and link allow from `bytes`; returns how many bytes went out.
    private func sendNow(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let host else { return 0 }
        var offset = 0
        while offset < bytes.count && remoteWindow > 0 && host.canSendChannelData && !sendSide.isCloseSent {
            let n = min(bytes.count - offset, remoteMaxPacket, Int(remoteWindow))
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
            let id = remoteID
            host.channelSend { out in
                out.sshByte(SSHMsg.channelData); out.sshUInt32(id); out.sshUInt32(UInt32(n))
                out.append(contentsOf: chunk)
            }
            remoteWindow -= UInt64(n)
            offset += n
            bytesWritten &+= UInt64(n)
        }
        return offset
    }

    /// Hands over what was collected during a batch of input, in one call, then tops up the
    /// window. Must run before the batch's bytes go stale (the connection's next read).
    func deliverBatch() {
        if !batch.isEmpty {
            if notifiedClose {
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
            } else if paused || delivering {
                keepBatchAside()
            } else {
                // Swapped, not copied, so both arrays keep their storage from batch to batch.
                swap(&batch, &batchSpare)
                consumed += UInt32(batchBytes)
                batchBytes = 0
                delivering = true
                delegate?.stream(self, didReadVector: batchSpare)
                delivering = false
                batchSpare.removeAll(keepingCapacity: true)
            }
        }
        guard !paused else { return }
        deliverPending()
        if !paused { maybeAdjustWindow() }
    }

    /// Copies `bytes` into `pendingIn`, after the batch (which must not outlive the read).
    private func keepAside(_ bytes: UnsafeRawBufferPointer) {
        keepBatchAside()
        pendingIn.append(bytes)
    }

    private func keepBatchAside() {
        guard !batch.isEmpty else { return }
        pendingIn.reserveCapacity(batchBytes)
        for part in batch { pendingIn.append(part) }
        batch.removeAll(keepingCapacity: true)
        batchBytes = 0
    }

    private func deliverPending() {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while !paused && !pendingIn.isEmpty && !notifiedClose {
            let n = min(pendingIn.readableBytes, 256 * 1024)
            pendingIn.withReadableBytes { raw in
                delegate?.stream(self, didRead: UnsafeRawBufferPointer(rebasing: raw[0..<n]))
            }
            consumed += UInt32(n)
            if pendingIn.readableBytes >= n { pendingIn.moveReaderIndex(by: n) }
        }
        if pendingIn.isEmpty && batch.isEmpty {
            pendingIn.releaseMemory()
            if receiveSide == .eofReceived && !notifiedClose {
                if let d = delegate { d.streamDidReadEOF(self) } else { close(nil) }
            }
        }
    }

    /// Also called by the host when it stops holding window adjusts (a re-exchange ended).
    func maybeAdjustWindow() {
        // Top the window up once a quarter of it is consumed (at least three packets, at most
        // half): the sender keeps three quarters in hand, so it never waits on an adjust while
        // the consumer keeps up. OpenSSH adjusts after three packets (96 KiB): at 1 GB/s up to
        // 10,000 messages a second that sshd, the bottleneck of a forward, must read and
        // decrypt. With a 2 MiB window this sends one per 512 KiB.
        let step = min(initialWindow / 2, max(3 * maxPacketIn, initialWindow / 4))
        guard !paused, !receiveSide.isFinished, !sendSide.isCloseSent, host?.holdsWindowAdjusts != true, consumed >= step else { return }
        let grant = consumed
        consumed = 0
        localWindow += grant
        let id = remoteID
        host?.channelSend { out in
            out.sshByte(SSHMsg.channelWindowAdjust); out.sshUInt32(id); out.sshUInt32(grant)
        }
    }

    /// Carries out what a send-side transition asks for.
    private func perform(_ action: SSHChannelSendSide.Action) {
        switch action {
        case .none: return
        case .sendEOF: sendEOF()
        case .close: close(nil)
        }
    }

    /// The EOF message; `sendSide` has already moved past it.
    private func sendEOF() {
        let id = remoteID
        host?.channelSend { out in out.sshByte(SSHMsg.channelEOF); out.sshUInt32(id) }
    }

    private func sendCloseIfNeeded() {
        guard sendSide.sendClose() else { return }
        let id = remoteID
        host?.channelSend { out in out.sshByte(SSHMsg.channelClose); out.sshUInt32(id) }
    }

    private func finishIfDone() {
        if sendSide.isCloseSent && receiveSide == .closeReceived { host?.channelDidFinish(self) }
    }

    private func notifyClose(_ reason: ConnectionError?) {
        guard !notifiedClose else { return }
        notifiedClose = true
        let d = delegate
        delegate = nil
        d?.stream(self, didCloseWith: reason)
    }
}
