/// Bytes moved each way by any number of StreamBridges that share it, counted as they are read,
/// so a reader sees the bytes of connections still open.
public final class TrafficMeter {
    public internal(set) var firstToSecond: UInt64 = 0
    public internal(set) var secondToFirst: UInt64 = 0
    public init() {}
}

/// The running counts of one forward's tunnelled connections. Whoever owns the forward (the
/// tunnel manager) keeps it across sessions and ChannelBridges update it as things happen, so
/// the counts stay monotonic and complete even when a session ends before its connections do.
public final class ForwardMeter {
    /// The bridge's first side is the tunnel channel: first-to-second is toward the local service.
    public let traffic = TrafficMeter()
    public var bytesToLocal: UInt64 { traffic.firstToSecond }
    public var bytesToTunnel: UInt64 { traffic.secondToFirst }
    public internal(set) var activeConnections = 0
    public internal(set) var totalConnections: UInt64 = 0
    public internal(set) var dialErrors: UInt64 = 0
    /// Channels refused with `resource shortage` at the channel limit, and at the dial limit.
    public internal(set) var refusedAtChannelLimit: UInt64 = 0
    public internal(set) var refusedAtDialLimit: UInt64 = 0
    public init() {}
}

/// The meters of every forward, by name; created on first use.
public final class ForwardMeters {
    public private(set) var byName: [String: ForwardMeter] = [:]
    public init() {}

    public func meter(_ forward: String) -> ForwardMeter {
        if let m = byName[forward] { return m }
        let m = ForwardMeter()
        byName[forward] = m
        return m
    }

    /// Bytes moved by every forward, both ways.
    public var totalBytes: UInt64 { byName.values.reduce(0) { $0 &+ $1.bytesToLocal &+ $1.bytesToTunnel } }
    public var activeConnections: Int { byName.values.reduce(0) { $0 + $1.activeConnections } }
}
