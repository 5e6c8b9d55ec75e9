import Logging
import Reactor

/// `tunnel.mode: ssh`: like `ssh -N -R` to any OpenSSH server. Connects, authenticates
/// (password or an ed25519 identity file), asks `tcpip-forward` for each forward and bridges
/// `forwarded-tcpip` channels to the local addresses with the session's ChannelBridges, as the
/// chisel mode does. The manager reconnects on drops.
final class SSHTunnelSession: TunnelSessionBase, SSHConnectionDelegate {
    unowned let loop: EventLoop
    let desired: DesiredTunnel
    let resolver: Resolver
    let privateKey: SSHEd25519PrivateKey?

    private var ssh: SSHConnection?
    private var forwarder: SSHReverseForwarder?
    private var forwards: [SSHForward] = []
    private var keepalive: SSHKeepalive?

    init(loop: EventLoop, desired: DesiredTunnel, manager: TunnelManager, resolver: Resolver,
         privateKey: SSHEd25519PrivateKey?, logger: Logger) {
        self.loop = loop
        self.desired = desired
        self.resolver = resolver
        self.privateKey = privateKey
        super.init(loop: loop, resolver: resolver, manager: manager, logger: logger)
    }

    override func start() {
        for f in desired.forwards {
            let local: (host: String, port: Int)
            do { local = try f.localHostPort() } catch {
                end(TunnelError("forward \(f.name)", cause: error))
                return
            }
            forwards.append(SSHForward(remoteAddress: f.remoteBind, remotePort: f.remotePort,
                                       localHost: local.host, localPort: local.port, name: f.name, dialTimeout: f.dialTimeout))
        }
        connect()
    }

    private func connect() {
        let e = desired.endpoint
        logger.info("connecting SSH tunnel", metadata: ["server": "\(e.host):\(e.port)", "user": "\(desired.credentials.user)"])
        var config = SSHClientConfig(credentials: SSHCredentials(
            user: desired.credentials.user,
            password: desired.credentials.password.isEmpty ? nil : desired.credentials.password,
            privateKey: privateKey))
        config.transport.expectedFingerprint = desired.fingerprint
        let stream = HostConnection(loop: loop, resolver: resolver, host: e.host, port: e.port, timeout: .seconds(10),
                                    delegate: nil, label: "ssh-tunnel")
        let conn = SSHConnection(loop: loop, stream: stream, config: config, delegate: self)
        conn.label = "tunnel"
        ssh = conn
    }

    func sshConnection(_ connection: SSHConnection, warning: String) {
        logger.warning("\(warning)", metadata: ["server": "\(desired.endpoint.host):\(desired.endpoint.port)"])
    }

    func sshConnectionDidAuthenticate(_ connection: SSHConnection) {
        let f = SSHReverseForwarder(connection: connection, forwards: forwards, bridges: bridges)
        forwarder = f
        f.start { [weak self] results in
            guard let self, !self.ended else { return }
            let failures = results.enumerated().compactMap { i, r -> String? in
                if case .failure(let e) = r { return "\(self.forwards[i].name): \(e)" }
                return nil
            }
            if failures.count == results.count {
                self.end(TunnelError("the SSH server refused every forward: \(failures.joined(separator: "; "))"))
                return
            }
            for (i, r) in results.enumerated() {
                if case .success(let port) = r { self.manager?.forwardBound(self.forwards[i].name, port: port) }
            }
            self.logger.info("tunnel connected", metadata: ["server": "\(self.desired.endpoint.host):\(self.desired.endpoint.port)", "mode": "ssh"])
            self.manager?.sessionDidConnect(self)
            // OpenSSH answers keepalive@openssh.com (with failure, which is fine): a reply means alive.
            let k = SSHKeepalive(loop: self.loop, connection: connection, request: "keepalive@openssh.com",
                                 interval: ChiselSession.keepaliveInterval, deadline: ChiselSession.keepaliveDeadline,
                                 onDead: { [weak self] why in self?.end(TunnelError(why)) })
            self.keepalive = k
            k.start()
        }
    }

    func sshConnection(_ connection: SSHConnection, channelOpen request: SSHChannelOpenRequest) {
        guard let f = forwarder, f.handle(request) else {
            request.reject(.administrativelyProhibited, text: "unexpected channel \(request.type)")
            return
        }
    }

    func sshConnection(_ connection: SSHConnection, didDisconnectWith error: SSHError?) {
        end(TunnelError(error == nil ? "SSH tunnel closed" : "SSH tunnel ended", cause: error))
    }

    override func teardown() {
        keepalive?.stop()
        let s = ssh
        ssh = nil
        s?.delegate = nil
        s?.close()
    }
}
