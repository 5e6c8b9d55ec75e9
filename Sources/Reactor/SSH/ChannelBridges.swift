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
    /// A channel was refused (`resource shortage`) because `limit` was reached.
    func channelBridgeRefused(forward: String, limit: ChannelBridges.Limit)
}

/// The bridging both tunnel modes share: an accepted SSH channel (a chisel `chisel` channel or
/// an OpenSSH `forwarded-tcpip` one) is held paused while its local address is dialled (names
/// resolve without blocking the loop), then piped to it by a StreamBridge. A failed dial closes
/// the channel. Keeps every bridge until it ends, for `closeAll`. Counts go into `meters`
/// as they happen (bytes as they are read), whether or not the observer is still there.
///
/// Limits: whoever holds the other end of the SSH connection (a control plane, the tunnel
/// server) could otherwise open channels until the agent runs out of descriptors or memory. At
/// `maxChannels` (bridged or being dialled) or `maxPendingDials`, a new channel is refused with
/// `resource shortage` before anything is dialled, and counted.
public final class ChannelBridges {
    public enum Limit: String, Sendable { case channels, pendingDials }

    public let loop: EventLoop
    public let resolver: Resolver
    public let meters: ForwardMeters
    /// For a dial when `accept`/`bridge` name none (each forward may have its own).
    public var dialTimeout: TimeAmount = .seconds(10)
    public var maxChannels = 1024
    public var maxPendingDials = 64
    /// Channels refused at each limit.
    public private(set) var refusedAtChannelLimit: UInt64 = 0
    public private(set) var refusedAtDialLimit: UInt64 = 0
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

    /// Takes a channel request for `forward`: refuses it with `resource shortage` at a limit,
    /// else accepts it and bridges it to `host:port`, dialled within `dialTimeout`.
    public func accept(_ request: SSHChannelOpenRequest, toHost host: String, port: Int, forward: String,
                       dialTimeout: TimeAmount? = nil) {
        if let limit = limitReached() {
            let meter = meters.meter(forward)
            switch limit {
            case .channels:
                refusedAtChannelLimit &+= 1
                meter.refusedAtChannelLimit &+= 1
            case .pendingDials:
                refusedAtDialLimit &+= 1
                meter.refusedAtDialLimit &+= 1
            }
            request.reject(.resourceShortage, text: limit == .channels
                ? "too many open channels (limit \(maxChannels))" : "too many connections being dialled (limit \(maxPendingDials))")
            observer?.channelBridgeRefused(forward: forward, limit: limit)
            return
        }
        guard let channel = request.accept(delegate: nil) else { return }
        bridge(channel, toHost: host, port: port, forward: forward, dialTimeout: dialTimeout)
    }

    /// The limit a new channel would go over, if any.
    public func limitReached() -> Limit? {
        if bridges.count + pendingDials.count >= maxChannels { return .channels }
        if pendingDials.count >= maxPendingDials { return .pendingDials }
        return nil
    }

    /// Dials `host:port` and pipes `channel` to it once connected. If the channel ends first
    /// (the remote client gave up), the dial is abandoned. No limit is checked here (`accept`
    /// does, before the channel is confirmed).
    public func bridge(_ channel: SSHChannel, toHost host: String, port: Int, forward: String, dialTimeout: TimeAmount? = nil) {
        channel.pauseReading()   // until the local side is connected; data waits in the channel
        nextID += 1
        let id = nextID
        let pending = PendingDial(channel: channel)
        let local = HostConnection(loop: loop, resolver: resolver, host: host, port: port, timeout: dialTimeout ?? self.dialTimeout,
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
