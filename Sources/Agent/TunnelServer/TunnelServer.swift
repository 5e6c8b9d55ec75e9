import Logging
import Reactor

/// A chisel-v3 tunnel server (reverse remotes only) on the loop: HTTP (or HTTPS) with the
/// WebSocket upgrade for `chisel-v3` and chisel's plain answers otherwise (`/health`,
/// `/version`, 404), one `TunnelServerSession` per client, and a cap on connections per client
/// address. chisel-v3-protocol.md is the contract; the unmodified chisel client and our agent
/// are its clients.
public final class TunnelServer {
    public let options: TunnelServerOptions
    public let hostKey: SSHServerHostKey
    let users: TunnelUsers
    let sshConfig: SSHServerConfig
    private unowned let loop: EventLoop
    private let logger: Logger
    private var http: HTTPServer?
    private var sessions: [ObjectIdentifier: TunnelServerSession] = [:]
    private var perClient: [String: Int] = [:]
    private var nextSessionID = 0

    public var fingerprint: String { hostKey.publicKey.fingerprintSHA256Base64 }
    public var port: Int { http?.port ?? 0 }
    public var sessionCount: Int { sessions.count }

    /// Loads the key, the users and the TLS files, and starts listening.
    public init(loop: EventLoop, options: TunnelServerOptions, logger: Logger) throws {
        self.loop = loop
        self.options = options
        self.logger = logger
        hostKey = try ChiselHostKey.load(keyFile: options.keyFile, seed: options.keySeed)
        users = try TunnelUsers(auth: options.auth,
                                authFileText: options.authFile.isEmpty ? nil : try readSmallFile(options.authFile, limit: 1 << 20))
        var ssh = SSHServerConfig(hostKey: hostKey)
        ssh.transport.banner = "SSH-chisel-v3-server"
        ssh.handshakeTimeout = options.handshakeTimeout
        ssh.maxPacketLengthBeforeAuth = options.maxPreAuthPacket
        ssh.maxChannels = options.maxChannelsPerConnection
        sshConfig = ssh
        var tls: TLSContext?
        if !options.tlsCert.isEmpty {
            do { tls = try TLSContext(.server(certificateChainFile: options.tlsCert, privateKeyFile: options.tlsKey)) } catch {
                throw TunnelServerError("--tls-cert/--tls-key: \(error)")
            }
        }
        let address: SocketAddress
        do { address = try SocketAddress(ip: options.host == "localhost" ? "127.0.0.1" : options.host, port: options.port) } catch {
            throw TunnelServerError("--host '\(options.host)' is not an IP address")
        }
        var config = HTTPServerConfiguration()
        config.maxConnections = 4096
        http = try HTTPServer(loop: loop, address: address, configuration: config, tls: tls) { [weak self] request, responder in
            self?.handle(request, responder) ?? responder.sendError(503, "shutting down")
        }
        if options.reverse { logger.info("Reverse tunnelling enabled") }
        logger.info("Fingerprint \(fingerprint)")
        if !users.isEmpty { logger.info("User authentication enabled") }
        let hostText = address.isIPv6 ? "[\(address.ip)]" : address.ip
        logger.info("Listening on \(tls == nil ? "http" : "https")://\(hostText):\(port)")
    }

    /// Stops listening and ends every session.
    public func close() {
        http?.close()
        http = nil
        for s in Array(sessions.values) { s.close("server shutting down") }
    }

    // MARK: HTTP

    private func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        if request.headers.hasToken("Upgrade", "websocket") {
            let proto = request.header("Sec-WebSocket-Protocol") ?? ""
            if proto == "chisel-v3" { return upgrade(request, responder) }
            logger.info("ignored client connection using protocol '\(proto)', expected 'chisel-v3'")
        }
        var headers = HTTPHeaders()
        headers.add("Content-Type", "text/plain; charset=utf-8")
        switch request.path {
        case "/health": responder.send(200, headers: headers, body: Array("OK\n".utf8))
        case "/version": responder.send(200, headers: headers, body: Array(AgentVersion.version.utf8))
        default: responder.send(404, headers: headers, body: Array("Not found".utf8))
        }
    }

    private func upgrade(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let client = request.peer?.ip ?? "?"
        let open = perClient[client, default: 0]
        guard open < options.maxConnectionsPerClient else {
            logger.warning("refused a tunnel connection: too many from this client",
                           metadata: ["client": "\(client)", "limit": "\(options.maxConnectionsPerClient)"])
            responder.sendError(429, "too many tunnel connections from \(client) (limit \(options.maxConnectionsPerClient))",
                                headers: HTTPHeaders([("Connection", "close")]))
            return
        }
        // Until authentication a message may hold little more than an SSH packet before auth.
        let preAuthMessage = options.maxPreAuthPacket + 1024
        WebSocketServerUpgrade.upgrade(request, responder, maxMessageSize: preAuthMessage) { [weak self] ws in
            guard let self else { ws.close(code: 1001); return }
            self.nextSessionID += 1
            let session = TunnelServerSession(id: self.nextSessionID, server: self, loop: self.loop, webSocket: WebSocketStream(ws),
                                              peer: request.peer, logger: self.logger)
            self.sessions[ObjectIdentifier(session)] = session
            self.perClient[client, default: 0] += 1
            session.start()
        }
    }

    func sessionEnded(_ session: TunnelServerSession) {
        guard sessions.removeValue(forKey: ObjectIdentifier(session)) != nil else { return }
        let client = session.peer?.ip ?? "?"
        let left = perClient[client, default: 1] - 1
        perClient[client] = left > 0 ? left : nil
    }
}
