/// One reverse forward: the server listens on `remoteAddress:remotePort` (0 picks a port) and
/// each connection there is bridged to `local`.
public struct SSHForward: Sendable, Equatable {
    public var remoteAddress: String
    public var remotePort: Int
    public var local: SocketAddress
    public var name: String
    public init(remoteAddress: String, remotePort: Int, local: SocketAddress, name: String = "") {
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.local = local
        self.name = name
    }
}

/// `ssh -R` on one SSHConnection: sends `tcpip-forward` for each forward, then bridges every
/// `forwarded-tcpip` channel to a new TCP connection to the forward's local address.
/// Reconnecting is the caller's job: make a new forwarder for each new connection.
public final class SSHReverseForwarder {
    public let connection: SSHConnection
    public let forwards: [SSHForward]
    public var connectTimeout: TimeAmount = .seconds(10)
    /// The port the server bound for each forward (nil until its reply, or if refused).
    public private(set) var boundPorts: [Int?]
    public private(set) var bridgesStarted = 0
    public private(set) var activeBridges = 0
    private var bridges: [ObjectIdentifier: StreamBridge] = [:]

    public init(connection: SSHConnection, forwards: [SSHForward]) {
        self.connection = connection
        self.forwards = forwards
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
            request.reject(reason: 1, text: "no forward for \(info.address):\(info.port)")
            return true
        }
        let forward = forwards[i]
        // Accept first, then dial (as chisel does); a failed dial closes the channel.
        guard let channel = request.accept(delegate: nil) else { return true }
        let tcp: TCPConnection
        let placeholder = PendingDial()
        defer { withExtendedLifetime(placeholder) {} }
        do {
            tcp = try TCPConnection.connect(loop: connection.loop, to: forward.local, timeout: connectTimeout,
                                            delegate: placeholder, label: forward.name)
        } catch {
            connection.loop.logger.warning("ssh forward dial failed", metadata: ["forward": "\(forward.name)", "error": "\(error)"])
            channel.close(.closedLocally("dial \(forward.local) failed"))
            return true
        }
        let bridge = StreamBridge(channel, tcp)
        let key = ObjectIdentifier(bridge)
        bridges[key] = bridge
        bridgesStarted += 1
        activeBridges += 1
        bridge.onFinish = { [weak self] _, _ in
            self?.bridges[key] = nil
            self?.activeBridges -= 1
        }
        bridge.start()
        return true
    }

    /// Closes every bridged connection.
    public func stop() {
        for b in bridges.values { b.first.close(nil) }
    }
}

/// Placeholder delegate for a TCP dial until its bridge takes over (in the same call).
private final class PendingDial: ByteStreamDelegate {
    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
}
