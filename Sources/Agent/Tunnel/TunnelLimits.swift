import Reactor

/// What one tunnel session may hold at once (`tunnel.max_channels`, `tunnel.max_pending_dials`);
/// applied to every session's ChannelBridges.
public struct TunnelLimits: Sendable, Equatable {
    public var maxChannels = 1024
    public var maxPendingDials = 64
    /// How often a limit hit is logged at most (the hits in between are counted into that line).
    public var logInterval: TimeAmount = .seconds(10)

    public init() {}

    public init(_ settings: TunnelSettings) {
        maxChannels = settings.maxChannels
        maxPendingDials = settings.maxPendingDials
    }
}
