import Logging
import Reactor

/// One chisel-v3 connection (chisel-v3-protocol.md §15): TCP (+TLS, or through an HTTP CONNECT
/// proxy), the WebSocket upgrade with `chisel-v3`, SSH with the fingerprint check and password
/// auth, the `config` request with every remote, then `chisel` channels dialled to the
/// configured local addresses only and piped with backpressure. Keepalive pings every 25 s with
/// a 15 s reply deadline. Any failure ends the session; the manager decides on the retry.
final class ChiselSession: TunnelSessionBase, SSHConnectionDelegate {
    static let keepaliveInterval: TimeAmount = .seconds(25)
    static let keepaliveDeadline: TimeAmount = .seconds(15)
    static let handshakeTimeout: TimeAmount = .seconds(45)

    unowned let loop: EventLoop
    let desired: DesiredTunnel
    let connector: HTTPConnector
    let proxies: HTTPProxySettings
    let resolver: Resolver
    /// Chisel target string (`host:port`) -> the forward's name, parsed local address and dial
    /// timeout, for the forwards we were allocated; channels to anything else are refused.
    let targets: [String: (forward: String, host: String, port: Int, dialTimeout: TimeAmount)]
    let remotes: [ChiselRemote]

    private var dialer: StreamDialer?
    private var webSocket: WebSocketStream?
    private var ssh: SSHConnection?
    private var keepalive: SSHKeepalive?

    init(loop: EventLoop, desired: DesiredTunnel, manager: TunnelManager, connector: HTTPConnector,
         proxies: HTTPProxySettings, resolver: Resolver, logger: Logger) throws(TunnelConfigError) {
        self.loop = loop
        self.desired = desired
        self.connector = connector
        self.proxies = proxies
        self.resolver = resolver
        var remotes: [ChiselRemote] = []
        var targets: [String: (forward: String, host: String, port: Int, dialTimeout: TimeAmount)] = [:]
        for f in desired.forwards {
            let local = try f.localHostPort()
            let r = ChiselRemote(localHost: f.remoteBind, localPort: f.remotePort, remoteHost: local.host, remotePort: local.port)
            remotes.append(r)
            if targets[r.target] == nil { targets[r.target] = (f.name, local.host, local.port, f.dialTimeout) }
        }
        self.remotes = remotes
        self.targets = targets
        super.init(loop: loop, resolver: resolver, manager: manager, logger: logger)
    }

    var remotesDisplay: String { remotes.map(\.display).joined(separator: ",") }
    var configJSON: String { chiselConfigJSON(version: AgentVersion.version, remotes: remotes) }

    // MARK: Connecting

    override func start() {
        let e = desired.endpoint
        logger.info("connecting tunnel", metadata: ["server": "\(e)", "remotes": "\(remotesDisplay)"])
        let origin = HTTPOrigin(useTLS: e.useTLS, host: e.host, port: e.port)
        dialer = StreamDialer.dial(loop: loop, origin: origin, connector: connector, proxies: proxies,
                                   timeout: Self.handshakeTimeout) { [weak self] result in
            guard let self, !self.ended else { return }
            self.dialer = nil
            switch result {
            case .failure(let err): self.end(TunnelError("cannot reach the tunnel server \(e)", cause: err))
            case .success(let stream): self.upgrade(stream)
            }
        }
    }

    private func upgrade(_ stream: ByteStream) {
        var headers = HTTPHeaders()
        headers.add("User-Agent", "pipeops-agent/\(AgentVersion.version)")
        WebSocketClientHandshake.start(stream: stream, host: desired.endpoint.hostHeader, path: desired.endpoint.path,
                                       subprotocols: ["chisel-v3"], headers: headers, timeout: Self.handshakeTimeout,
                                       maxMessageSize: 4 << 20) { [weak self] result in
            guard let self else { stream.close(nil); return }
            guard !self.ended else { if case .success(let ws) = result { ws.close(code: 1000) }; return }
            switch result {
            case .failure(let err):
                self.end(TunnelError("tunnel server \(self.desired.endpoint)", cause: err))
            case .success(let ws):
                let wsStream = WebSocketStream(ws)
                self.webSocket = wsStream
                var config = SSHClientConfig(credentials: SSHCredentials(user: self.desired.credentials.user,
                                                                         password: self.desired.credentials.password))
                config.transport.banner = "SSH-chisel-v3-client"
                config.transport.expectedFingerprint = self.desired.fingerprint
                config.handshakeTimeout = Self.handshakeTimeout
                let ssh = SSHConnection(loop: self.loop, stream: wsStream, config: config, delegate: self)
                ssh.label = "tunnel"
                self.ssh = ssh
                ssh.start()
            }
        }
    }

    // MARK: SSHConnectionDelegate

    func sshConnection(_ connection: SSHConnection, warning: String) {
        logger.warning("\(warning)", metadata: ["server": "\(desired.endpoint)"])
    }

    /// An unchecked key is already reported through `warning`; a checked one is logged like chisel does.
    func sshConnection(_ connection: SSHConnection, didVerifyHostKey key: SSHHostKey) {
        if !desired.fingerprint.isEmpty { logger.info("Fingerprint \(key.fingerprintSHA256Base64)") }
    }

    func sshConnectionDidAuthenticate(_ connection: SSHConnection) {
        logger.debug("sending tunnel config", metadata: ["config": "\(configJSON)"])
        let sentAt = loop.now
        connection.sendGlobalRequest("config", wantReply: true, data: Array(configJSON.utf8)) { [weak self] reply in
            guard let self, !self.ended else { return }
            // chisel's Go client: non-empty reply data is the error, whatever the flag says.
            if !reply.data.isEmpty {
                self.end(TunnelError("tunnel server refused the config: \(String(decoding: reply.data, as: UTF8.self))"))
                return
            }
            let latency = self.loop.now - sentAt
            self.logger.info("tunnel connected", metadata: ["server": "\(self.desired.endpoint)", "latency_ms": "\(latency.milliseconds)",
                                                            "remotes": "\(self.remotesDisplay)"])
            self.manager?.sessionDidConnect(self)
            // chisel's keepalive: `ping` every 25 s; an empty reply or `pong` is fine.
            let k = SSHKeepalive(loop: self.loop, connection: connection, request: "ping",
                                 interval: Self.keepaliveInterval, deadline: Self.keepaliveDeadline,
                                 check: { reply in
                                     reply.data.isEmpty || reply.data == Array("pong".utf8) ? nil
                                         : "unexpected ping reply \(String(decoding: reply.data.prefix(64), as: UTF8.self))"
                                 },
                                 onDead: { [weak self] why in self?.end(TunnelError(why)) })
            self.keepalive = k
            k.start()
        }
    }

    func sshConnection(_ connection: SSHConnection, channelOpen request: SSHChannelOpenRequest) {
        guard request.type == "chisel" else {
            request.reject(.unknownChannelType, text: "unknown channel type \(request.type)")
            return
        }
        let target = String(decoding: request.data, as: UTF8.self)
        guard let local = targets[target] else {
            logger.warning("refused a tunnel channel to an unconfigured target", metadata: ["target": "\(target)"])
            request.reject(.administrativelyProhibited, text: "Denied outbound connection")
            return
        }
        bridges.accept(request, toHost: local.host, port: local.port, forward: local.forward, dialTimeout: local.dialTimeout)
    }

    func sshConnection(_ connection: SSHConnection, didDisconnectWith error: SSHError?) {
        end(TunnelError(error == nil ? "tunnel SSH connection closed" : "tunnel SSH connection ended", cause: error))
    }

    // MARK: Ending

    override func teardown() {
        keepalive?.stop()
        dialer?.cancel()
        dialer = nil
        let s = ssh
        ssh = nil
        s?.delegate = nil
        s?.close()
        webSocket?.close(nil)
        webSocket = nil
    }
}
