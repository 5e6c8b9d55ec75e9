/// One reverse forward: the server listens on `remoteAddress:remotePort` (0 picks a port) and
/// each connection there is bridged to `localHost:localPort` (a name or an address).
public struct SSHForward: Sendable, Equatable {
    public var remoteAddress: String
    public var remotePort: Int
    public var localHost: String
    public var localPort: Int
    public var name: String
    /// How long a dial of the local address may take (nil: the bridges' default).
    public var dialTimeout: TimeAmount?
    public init(remoteAddress: String, remotePort: Int, localHost: String, localPort: Int, name: String = "",
                dialTimeout: TimeAmount? = nil) {
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.localHost = localHost
        self.localPort = localPort
        self.name = name
        self.dialTimeout = dialTimeout
    }
    public var local: String { localHost.contains(":") ? "[\(localHost)]:\(localPort)" : "\(localHost):\(localPort)" }
}

/// `ssh -R` on one SSHConnection: sends `tcpip-forward` for each forward, then hands every
/// `forwarded-tcpip` channel to `bridges` (the bridging the chisel mode uses too), dialled to
/// the forward's local address. Reconnecting is the caller's job: make a new forwarder for
/// each new connection.
public final class SSHReverseForwarder {
    public let connection: SSHConnection
    public let forwards: [SSHForward]
    public let bridges: ChannelBridges
    /// The port the server bound for each forward (nil until its reply, or if refused).
    public private(set) var boundPorts: [Int?]

    public init(connection: SSHConnection, forwards: [SSHForward], bridges: ChannelBridges) {
        self.connection = connection
        self.forwards = forwards
        self.bridges = bridges
        boundPorts = Array(repeating: nil, count: forwards.count)
    }
    /// Sends the `tcpip-forward` requests; `done` gets each forward's result, in order.
    public func start(done: @escaping ([Result<Int, SSHError>]) -> Void) {
        var results: [Result<Int, SSHError>?] = Array(repeating: nil, count: forwards.count)
        if forwards.isEmpty { done([]); return }
        let logger = connection.loop.logger
        for (i, f) in forwards.enumerated() {
            connection.requestTCPIPForward(address: f.remoteAddress, port: f.remotePort) { [weak self] result in
                results[i] = result
                switch result {
                case .success(let port):
                    self?.boundPorts[i] = port
                    logger.info("ssh reverse forward listening", metadata: [
                        "forward": "\(f.name)", "remote": "\(f.remoteAddress):\(port)", "local": "\(f.local)"])
                case .failure(let e):
                    logger.error("ssh reverse forward refused", metadata: ["forward": "\(f.name)", "error": "\(e)"])
                }
                if results.allSatisfy({ $0 != nil }) { done(results.compactMap { $0 }) }
            }
        }
    }

    /// Takes a `forwarded-tcpip` channel request if it belongs to one of our forwards.
    @discardableResult
    public func handle(_ request: SSHChannelOpenRequest) -> Bool {
        guard request.type == "forwarded-tcpip", let info = request.forwardedTCPIP else { return false }
        var index: Int? = nil
        for (i, port) in boundPorts.enumerated() where port == info.port { index = i; break }
        if index == nil && forwards.count == 1 { index = 0 }
        guard let i = index else {
            request.reject(.administrativelyProhibited, text: "no forward for \(info.address):\(info.port)")
            return true
        }
        let forward = forwards[i]
        // Accept first, then dial (as chisel does); a failed dial closes the channel.
        bridges.accept(request, toHost: forward.localHost, port: forward.localPort, forward: forward.name,
                       dialTimeout: forward.dialTimeout)
        return true
    }
}
