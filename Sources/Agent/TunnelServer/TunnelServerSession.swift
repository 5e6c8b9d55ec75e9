import Logging
import Reactor

/// One client of the tunnel server: SSH (server side) over its WebSocket, password auth
/// against the users, then the `config` request within the deadline (chisel-v3-protocol.md
/// §6.2), its reverse remotes bound at once (all or none, so a port in use is the reply, not a
/// later surprise), `ping`s both ways, and everything freed the moment the connection ends.
final class TunnelServerSession: SSHConnectionDelegate {
    enum State: Equatable { case handshaking, awaitingConfig, ready, configFailed, closed }

    let id: Int
    let peer: SocketAddress?
    var clientAddress: String { peer.map { "\($0)" } ?? "?" }
    private(set) var state = State.handshaking
    private(set) var listeners: [ReverseListener] = []
    private(set) var user: String?
    private unowned let server: TunnelServer
    private let loop: EventLoop
    private let webSocket: WebSocketStream
    private var ssh: SSHConnection?
    private var logger: Logger
    private var configTimer: LoopTimer?
    private var keepalive: SSHKeepalive?

    /// A client that ignores a refused config is dropped after this.
    static let lingerAfterRefusal: TimeAmount = .seconds(2)
    /// WebSocket messages after authentication (chisel's Go client sends one SSH packet per
    /// message; our agent up to 64 KiB).
    static let maxMessageAfterAuth = 1 << 20

    init(id: Int, server: TunnelServer, loop: EventLoop, webSocket: WebSocketStream, peer: SocketAddress?, logger: Logger) {
        self.id = id
        self.server = server
        self.loop = loop
        self.webSocket = webSocket
        self.peer = peer
        self.logger = logger
        self.logger[metadataKey: "session"] = "\(id)"
    }

    func start() {
        let ssh = SSHConnection(loop: loop, stream: webSocket, serverConfig: server.sshConfig, delegate: self)
        ssh.label = "tunnel-server#\(id)"
        self.ssh = ssh
        ssh.start()
    }

    /// Ends the connection (the listeners go with it, in `didDisconnectWith`).
    func close(_ why: String) {
        guard state != .closed else { return }
        logger.debug("closing: \(why)")
        ssh?.close()
    }

    // MARK: SSHConnectionDelegate

    func sshConnection(_ connection: SSHConnection, authenticate user: String, password: String) -> Bool {
        guard server.users.authenticate(user: user, password: password) else {
            logger.info("Login failed for user: \(user)", metadata: ["client": "\(clientAddress)"])
            return false
        }
        return true
    }

    func sshConnectionDidAuthenticate(_ connection: SSHConnection) {
        user = connection.authenticatedUser
        state = .awaitingConfig
        webSocket.connection.maxMessageSize = Self.maxMessageAfterAuth
        logger.debug("authenticated", metadata: ["user": "\(user ?? "")", "client_banner": "\(connection.peerBanner ?? "")"])
        let limit = server.options.configTimeout
        configTimer = loop.schedule(in: limit) { [weak self] in
            guard let self, self.state == .awaitingConfig else { return }
            self.logger.info("Timeout waiting for configuration", metadata: ["client": "\(self.clientAddress)", "limit": "\(limit)"])
            self.close("no config within \(limit)")
        }
    }

    func sshConnection(_ connection: SSHConnection, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply? {
        switch state {
        case .awaitingConfig:
            configTimer?.cancel()
            configTimer = nil
            return handleConfig(name: name, data: data)
        case .ready where name == "ping":
            return SSHGlobalReply(success: true, data: Array("pong".utf8))
        case .ready:
            logger.info("tun: Unknown request: \(name)")
            return SSHGlobalReply(success: false)
        case .handshaking, .configFailed, .closed:
            return SSHGlobalReply(success: false)
        }
    }

    /// Forward tunnels (channels the client opens) are not served: only reverse remotes.
    func sshConnection(_ connection: SSHConnection, channelOpen request: SSHChannelOpenRequest) {
        logger.info("Denied connection to \(String(decoding: request.data.prefix(256), as: UTF8.self)) (only reverse remotes are served)")
        request.reject(reason: 1, text: "access denied")
    }

    func sshConnection(_ connection: SSHConnection, warning: String) { logger.warning("\(warning)") }

    func sshConnection(_ connection: SSHConnection, didDisconnectWith error: SSHError?) {
        guard state != .closed else { return }
        let wasReady = state == .ready
        state = .closed
        configTimer?.cancel()
        configTimer = nil
        keepalive?.stop()
        keepalive = nil
        for l in listeners { l.close() }
        if !listeners.isEmpty { logger.info("tun: Unbound proxies") }
        listeners = []
        ssh = nil
        webSocket.close(nil)
        logger.info(wasReady ? "SSH disconnected" : "Closed connection", metadata: error.map { ["error": "\($0)"] } ?? [:])
        server.sessionEnded(self)
    }

    // MARK: Config

    private func handleConfig(name: String, data: [UInt8]) -> SSHGlobalReply {
        guard name == "config" else { return refuse("expecting config request") }
        let config: ChiselConfigRequest
        do { config = try ChiselConfigRequest.decode(data) } catch {
            logger.debug("config decode: \(error)")
            return refuse("invalid config")
        }
        let version = config.version.hasPrefix("v") ? String(config.version.dropFirst()) : config.version
        if version != AgentVersion.version {
            logger.debug("Client version (\(version)) differs from server version (\(AgentVersion.version))")
        }
        for r in config.remotes {
            if !server.users.isEmpty && !server.users.allows(user: user ?? "", address: r.aclAddress) {
                return refuse("access to '\(r.aclAddress)' denied")
            }
            if r.reverse && !server.options.reverse { return refuse("Reverse port forwaring not enabled on server") }
            if !r.reverse { return refuse("forward remote \(r.display) refused: this server serves reverse remotes (R:) only") }
        }
        // Bind every reverse remote now: the reply says whether they all are listening.
        var bound: [ReverseListener] = []
        for r in config.remotes {
            do {
                guard let ssh else { return refuse("connection closed") }
                let address = try Self.bindAddress(r)
                bound.append(try ReverseListener(loop: loop, remote: r, address: address, connection: ssh, logger: logger))
            } catch {
                for l in bound { l.close() }
                return refuse("Server cannot listen on \(r.display): \(error)")
            }
        }
        listeners = bound
        state = .ready
        for l in bound { logger.info("tun: proxy#\(l.remote.display): Listening", metadata: ["port": "\(l.port)"]) }
        logger.info("tun: Bound proxies", metadata: ["client": "\(clientAddress)", "user": "\(user ?? "")",
                                                     "remotes": "\(bound.map(\.remote.display).joined(separator: ","))"])
        startKeepalive()
        return SSHGlobalReply(success: true)
    }

    private func refuse(_ text: String) -> SSHGlobalReply {
        state = .configFailed
        logger.info("Failed: server: \(text)", metadata: ["client": "\(clientAddress)"])
        configTimer = loop.schedule(in: Self.lingerAfterRefusal) { [weak self] in self?.close("config refused") }
        return SSHGlobalReply(success: false, data: Array("server: \(text)".utf8))
    }

    /// The address a remote's listener binds: LocalHost as an IP literal (`""` is 0.0.0.0,
    /// `localhost` is 127.0.0.1), LocalPort 0-65535, TCP only.
    static func bindAddress(_ r: ChiselServerRemote) throws -> SocketAddress {
        guard r.localProto == "tcp" else {
            throw TunnelServerError(r.localProto.isEmpty ? "LocalProto is empty" : "\(r.localProto) remotes are not served")
        }
        guard let port = Int(r.localPort), (0...65535).contains(port) else { throw TunnelServerError("bad port '\(r.localPort)'") }
        var host = r.localHost
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }
        do { return try SocketAddress(ip: host, port: port) } catch {
            throw TunnelServerError("'\(r.localHost)' is not an IP address of this host")
        }
    }

    private func startKeepalive() {
        guard server.options.keepalive > .zero, let ssh else { return }
        // chisel's server has no reply deadline; ours is the interval itself.
        let k = SSHKeepalive(loop: loop, connection: ssh, request: "ping", interval: server.options.keepalive,
                             deadline: server.options.keepalive,
                             check: { reply in
                                 reply.data.isEmpty || reply.data == Array("pong".utf8) ? nil
                                     : "unexpected ping reply \(String(decoding: reply.data.prefix(64), as: UTF8.self))"
                             },
                             onDead: { [weak self] why in self?.close(why) })
        keepalive = k
        k.start()
    }
}
