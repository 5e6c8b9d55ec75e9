import Reactor

/// Counters for one forward, shown in heartbeats, `/api/health/detailed` and `/metrics`.
public struct ForwardStats: Sendable, Equatable {
    public var remotePort = 0
    public var activeConnections = 0
    public var totalConnections: UInt64 = 0
    /// Bytes from the tunnel to the local service, and back.
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var dialErrors: UInt64 = 0
    public init() {}
}

/// What the tunnel should be, as the last poll said; compared to decide on a reconnect.
public struct DesiredTunnel: Equatable, Sendable {
    public struct Forward: Equatable, Sendable {
        public var name: String
        public var remotePort: Int
        public var localAddr: String
        public var remoteBind: String
        public var dialTimeout: TimeAmount = TunnelForward.defaultDialTimeout

        /// `localAddr` as host and port; the error names the forward.
        func localHostPort() throws(TunnelConfigError) -> (host: String, port: Int) {
            do { return try SocketAddress.splitHostPort(localAddr) } catch {
                throw TunnelConfigError("forward \(name): local_addr \(error)")
            }
        }
    }
    public var endpoint: TunnelEndpoint
    public var credentials: TunnelCredentials
    public var fingerprint: String
    public var forwards: [Forward]
}
