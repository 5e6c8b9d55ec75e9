/// Bytes moved by one bridged connection: from the tunnel to the local service, and back.
public struct ForwardTraffic: Sendable, Equatable {
    public var toLocal: UInt64 = 0
    public var toTunnel: UInt64 = 0
    public init(toLocal: UInt64 = 0, toTunnel: UInt64 = 0) {
        self.toLocal = toLocal
        self.toTunnel = toTunnel
    }
}

/// What the owner of a ChannelBridges hears, by forward name. `id` numbers the connections.
public protocol ChannelBridgesObserver: AnyObject {
    func channelBridgeOpened(forward: String, id: Int)
    func channelBridgeDialFailed(forward: String, target: String, error: ConnectionError?)
    func channelBridgeClosed(forward: String, id: Int, traffic: ForwardTraffic)
}

/// The bridging both tunnel modes share: an accepted SSH channel (a chisel `chisel` channel or
/// an OpenSSH `forwarded-tcpip` one) is held paused while its local address is dialled (names
/// resolve without blocking the loop), then piped to it by a StreamBridge. A failed dial closes
/// the channel. Keeps every bridge until it ends, for `closeAll`. Counts go into `meters`
/// as they happen (bytes as they are read), whether or not the observer is still there.
public final class ChannelBridges {
    public let loop: EventLoop
    public let resolver: Resolver
    public let meters: ForwardMeters
    public var dialTimeout: TimeAmount = .seconds(10)
    /// After one side of a connection ended, how long the other may take to flush (StreamBridge).
    public var flushTimeout: TimeAmount = .seconds(30)
    public weak var observer: ChannelBridgesObserver?
    /// Connections dialled successfully so far.
    public private(set) var started = 0
    public var active: Int { bridges.count }

    private var bridges: [Int: (bridge: StreamBridge, forward: String)] = [:]
    /// Dials in progress (a HostConnection holds its delegate weakly, so they are kept here).
    private var pendingDials: [Int: PendingDial] = [:]
    private var nextID = 0

    public init(loop: EventLoop, resolver: Resolver, meters: ForwardMeters = ForwardMeters()) {
        self.loop = loop
        self.resolver = resolver
        self.meters = meters
    }

    /// Dials `host:port` and pipes `channel` to it once connected. If the channel ends first
    /// (the remote client gave up), the dial is abandoned.
    public func bridge(_ channel: SSHChannel, toHost host: String, port: Int, forward: String) {
        channel.pauseReading()   // until the local side is connected; data waits in the channel
        nextID += 1
        let id = nextID
        let pending = PendingDial(channel: channel)
        let local = HostConnection(loop: loop, resolver: resolver, host: host, port: port, timeout: dialTimeout,
                                   delegate: pending, label: forward)
        pendingDials[id] = pending
        let meter = meters.meter(forward)
        pending.onOpen = { [weak self] in
            guard let self else { local.close(nil); channel.close(nil); return }
            self.pendingDials.removeValue(forKey: id)
            self.start(StreamBridge(channel, local, meter: meter.traffic), id: id, forward: forward, meter: meter)
            channel.resumeReading()
        }
        pending.onFail = { [weak self] error in
            channel.close(nil)
            meter.dialErrors &+= 1
            guard let self else { return }
            self.pendingDials.removeValue(forKey: id)
            self.observer?.channelBridgeDialFailed(forward: forward, target: "\(host):\(port)", error: error)
        }
        pending.onChannelEnd = { [weak self] in
            local.close(nil)
            channel.close(nil)
            self?.pendingDials.removeValue(forKey: id)
        }
        pending.local = local
        channel.delegate = pending
    }

    /// Local connections being dialled.
    public var dialsInProgress: Int { pendingDials.count }

    private func start(_ bridge: StreamBridge, id: Int, forward: String, meter: ForwardMeter) {
        started += 1
        meter.activeConnections += 1
        meter.totalConnections &+= 1
        bridges[id] = (bridge, forward)
        bridge.onFinish = { [weak self] b, _ in
            meter.activeConnections -= 1
            guard let self else { return }
            self.bridges.removeValue(forKey: id)
            self.observer?.channelBridgeClosed(forward: forward, id: id, traffic: Self.traffic(b))
        }
        observer?.channelBridgeOpened(forward: forward, id: id)
        bridge.flushTimeout = flushTimeout
        bridge.start()
    }

    /// Ends every bridge and every dial in progress.
    public func closeAll() {
        for p in pendingDials.values {
            p.onOpen = nil
            p.onFail = nil
            p.onChannelEnd = nil
            p.local?.close(nil)
            p.channel.close(nil)
        }
        pendingDials.removeAll()
        for (b, _) in bridges.values { b.first.close(nil); b.second.close(nil) }
    }

    // The channel is the bridge's first side, the local connection its second.
    private static func traffic(_ b: StreamBridge) -> ForwardTraffic {
        ForwardTraffic(toLocal: b.bytesFirstToSecond, toTunnel: b.bytesSecondToFirst)
    }
}

/// Delegate of both the dial and the waiting channel until the dial opens, fails, or the
/// channel ends (its EOF comes here only when no data waits in front of it: nothing to send).
private final class PendingDial: ByteStreamDelegate {
    let channel: SSHChannel
    var local: HostConnection?
    var onOpen: (() -> Void)?
    var onFail: ((ConnectionError?) -> Void)?
    var onChannelEnd: (() -> Void)?
    init(channel: SSHChannel) { self.channel = channel }

    // Exactly one callback runs, and it may drop the last reference to this object: take
    // them all out first.
    private func take() -> (open: (() -> Void)?, fail: ((ConnectionError?) -> Void)?, end: (() -> Void)?) {
        defer { onOpen = nil; onFail = nil; onChannelEnd = nil }
        return (onOpen, onFail, onChannelEnd)
    }
    func streamDidOpen(_ stream: ByteStream) {
        guard stream !== channel else { return }
        take().open?()
    }
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func streamDidReadEOF(_ stream: ByteStream) {
        if stream === channel { take().end?() }
    }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        if stream === channel { take().end?() } else { take().fail?(error) }
    }
}
