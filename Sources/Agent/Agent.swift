import Logging
import Reactor

/// The PipeOps agent: owns every long-lived part (control-plane client, tunnel manager, HTTP
/// server) and runs them on one event loop.
public final class Agent {
    public let loop: EventLoop
    public let config: AgentConfig
    let environment: [String: String]
    let logger: Logger
    let stateStore: StateStore
    public private(set) var state: AgentState

    let resolver: Resolver
    let connector: HTTPConnector
    let proxies: HTTPProxySettings
    let httpClient: HTTPClient
    public private(set) var controlPlane: ControlPlaneClient?
    public private(set) var tunnel: TunnelManager?
    public private(set) var server: HTTPServer?
    private var shuttingDown = false
    /// Why the SSH tunnel could not start (bad server address or key); reported on `/ready`.
    private var tunnelStartError: String?

    public init(loop: EventLoop, config: AgentConfig, environment: [String: String]) throws {
        self.loop = loop
        self.config = config
        self.environment = environment
        var l = Logger(label: "agent")
        l[metadataKey: "component"] = "agent"
        logger = l
        stateStore = StateStore(path: config.state.path)
        let (state, warnings) = try stateStore.bootstrap(configuredAgentID: config.agent.id)
        self.state = state
        for w in warnings { l.warning("state: \(w)") }

        resolver = try Resolver(loop: loop)
        let tls = config.pipeops.tls
        if tls.insecureSkipVerify {
            l.warning("pipeops.tls.insecure_skip_verify is on: server certificates are NOT checked (labs only)")
        }
        let lazyTLS = LazyTLSContext(.client(additionalCAFile: tls.caFile, certificateChainFile: tls.certFile,
                                             privateKeyFile: tls.keyFile, insecureSkipVerify: tls.insecureSkipVerify))
        // Built now when it will be needed anyway (an https control plane) or when files are
        // configured, so a bad file stops the start with a clear error; otherwise on first use.
        if config.pipeops.apiURL.lowercased().hasPrefix("https:") || tls.caFile != nil || tls.certFile != nil || tls.keyFile != nil {
            _ = try lazyTLS.context()
        }
        connector = Connectors.make(loop: loop, resolver: resolver, tls: lazyTLS.context)
        proxies = try HTTPProxySettings.fromEnvironment(environment)
        httpClient = HTTPClient(loop: loop, connector: connector, proxies: proxies)
        httpClient.connectTimeout = config.pipeops.timeouts.connect
    }

    public func start() {
        logger.info("agent starting", metadata: ["version": "\(AgentVersion.version)", "agent_id": "\(state.agentID)",
                                                 "api_url": "\(config.pipeops.apiURL.isEmpty ? "(standalone)" : config.pipeops.apiURL)",
                                                 "state": "\(config.state.path)"])
        startServer()
        startTunnel()
        startControlPlane()
    }

    private func startServer() {
        let router = HTTPRouter()
        StatusRoutes(agent: self).install(on: router)
        do {
            let address = try SocketAddress(ip: "0.0.0.0", port: config.agent.port)
            let s = try HTTPServer(loop: loop, address: address, router: router)
            server = s
            logger.info("HTTP server listening", metadata: ["port": "\(s.port)"])
        } catch {
            logger.error("cannot start the HTTP server", metadata: ["port": "\(config.agent.port)", "error": "\(error)"])
        }
    }

    private func startTunnel() {
        guard config.tunnel.enabled else { return }
        if config.tunnel.mode == .ssh { startSSHTunnel(); return }
        let manager = TunnelManager(loop: loop, forwards: config.tunnel.forwards, inactivityTimeout: config.tunnel.inactivityTimeout,
                                    logger: logger) { [unowned self] desired, manager in
            do {
                return try ChiselSession(loop: self.loop, desired: desired, manager: manager, connector: self.connector,
                                         proxies: self.proxies, resolver: self.resolver, logger: manager.logger)
            } catch {
                return FailedSession(manager: manager, loop: self.loop, resolver: self.resolver, error: "\(error)")
            }
        }
        tunnel = manager
    }

    /// SSH mode opens at start and stays up (reconnecting) whatever the control plane says.
    private func startSSHTunnel() {
        let ssh = config.tunnel.ssh
        let endpoint: TunnelEndpoint
        var key: SSHEd25519PrivateKey?
        do {
            guard let server = ssh.server, !server.isEmpty else { throw TunnelConfigError("tunnel.ssh.server is not set") }
            let (host, port) = server.contains(":") ? try SocketAddress.splitHostPort(server) : (server, 22)
            endpoint = TunnelEndpoint(useTLS: false, host: host, port: port, path: "")
            if let file = ssh.identityFile, !file.isEmpty {
                guard let text = readTextFile(file) else { throw TunnelConfigError("tunnel.ssh.identity_file \(file) cannot be read") }
                do { key = try SSHEd25519PrivateKey(openSSHText: text) } catch {
                    throw TunnelConfigError("tunnel.ssh.identity_file \(file): \(error)")
                }
            }
        } catch {
            logger.error("SSH tunnel not started", metadata: ["error": "\(error)"])
            tunnelStartError = "not started: \(error)"
            return
        }
        let desired = DesiredTunnel(
            endpoint: endpoint,
            credentials: TunnelCredentials(user: ssh.user ?? "", password: ssh.password ?? ""),
            fingerprint: ssh.hostKeyFingerprint ?? "",
            forwards: config.tunnel.forwards.map { .init(name: $0.name, remotePort: $0.remotePort, localAddr: $0.localAddr, remoteBind: $0.remoteBind) })
        let manager = TunnelManager(loop: loop, forwards: config.tunnel.forwards, inactivityTimeout: .zero,
                                    logger: logger) { [unowned self] desired, manager in
            SSHTunnelSession(loop: self.loop, desired: desired, manager: manager, resolver: self.resolver,
                             privateKey: key, logger: manager.logger)
        }
        tunnel = manager
        manager.openStatic(desired)
    }

    private func startControlPlane() {
        guard !config.pipeops.apiURL.isEmpty else {
            logger.info("no pipeops.api_url: running standalone, without a control plane")
            return
        }
        let transport = HTTPControlPlaneTransport(client: httpClient, baseURL: config.pipeops.apiURL)
        let cp = ControlPlaneClient(loop: loop, config: config, state: state, stateStore: stateStore,
                                    transport: transport, environment: environment, logger: logger)
        if config.tunnel.mode == .chisel {
            cp.onDirective = { [weak self] directive in self?.tunnel?.apply(directive) }
        }
        cp.tunnelReport = { [weak self] in self?.tunnelReport() ?? .init(status: "disconnected") }
        cp.onRegistered = { [weak self, weak cp] _ in if let cp { self?.state = cp.state } }
        controlPlane = cp
        cp.start()
    }

    func tunnelReport() -> ControlPlaneClient.TunnelReport {
        guard let t = tunnel else { return .init(status: "disconnected") }
        // Only forwards with an allocated port are reported.
        let forwards = t.stats.filter { $0.value.remotePort > 0 }.sorted { $0.key < $1.key }
        return .init(status: t.heartbeatStatus, forwards: forwards.map { (name: $0.key, stats: $0.value) })
    }

    /// The checks `/ready` reports.
    func readinessChecks() -> [String: ReadinessCheck] {
        var checks: [String: ReadinessCheck] = [:]
        if let cp = controlPlane {
            checks["registered"] = cp.isRegistered
                ? ReadinessCheck(ok: true, detail: "cluster \(cp.state.clusterID ?? "?")")
                : ReadinessCheck(ok: false, detail: cp.lastRegistrationError ?? "registration in progress")
            if !cp.isRegistered {
                checks["control_plane"] = ReadinessCheck(ok: false, detail: cp.lastRegistrationError ?? "not registered yet")
            } else if cp.consecutiveHeartbeatFailures >= 3 {
                checks["control_plane"] = ReadinessCheck(ok: false, detail: "degraded: \(cp.consecutiveHeartbeatFailures) heartbeats failed in a row: \(cp.lastHeartbeatError ?? "")")
            } else {
                checks["control_plane"] = ReadinessCheck(ok: true, detail: cp.lastHeartbeatError.map { "last heartbeat failed: \($0)" } ?? "heartbeats ok")
            }
        } else {
            checks["registered"] = ReadinessCheck(ok: true, detail: "standalone (no control plane configured)")
            checks["control_plane"] = ReadinessCheck(ok: true, detail: "standalone (no control plane configured)")
        }
        if let t = tunnel {
            if let e = t.allocationError {
                checks["tunnel"] = ReadinessCheck(ok: false, detail: e)
            } else {
                switch t.phase {
                case .connected: checks["tunnel"] = ReadinessCheck(ok: true, detail: "up to \(t.desired.map { "\($0.endpoint)" } ?? "?")")
                case .idle: checks["tunnel"] = ReadinessCheck(ok: true, detail: "idle (not requested)")
                case .connecting: checks["tunnel"] = ReadinessCheck(ok: false, detail: "connecting" + (t.lastError.map { " (last error: \($0))" } ?? ""))
                case .disconnected: checks["tunnel"] = ReadinessCheck(ok: false, detail: "down: \(t.lastError ?? "unknown")")
                }
            }
        } else if let e = tunnelStartError {
            checks["tunnel"] = ReadinessCheck(ok: false, detail: e)
        } else {
            checks["tunnel"] = ReadinessCheck(ok: true, detail: config.tunnel.enabled ? "mode \(config.tunnel.mode.rawValue)" : "disabled")
        }
        checks["kubernetes"] = ReadinessCheck(ok: true, detail: "not checked (no Kubernetes client in this build)")
        return checks
    }

    /// Stops accepting work and closes every connection (closing frames are queued, not waited
    /// for), then calls `done` at the end of this loop turn. A second call does nothing.
    public func shutdown(signal: Int32, done: @escaping () -> Void) {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.info("shutdown requested", metadata: ["signal": "\(signalName(signal))"])
        controlPlane?.stop()
        tunnel?.shutdown()
        server?.close()
        httpClient.closeIdle()
        loop.deferred(done)
    }

    public func reload() {
        logger.info("reload requested (SIGHUP): re-reading /etc/hosts")
        resolver.invalidateHostsCache()
    }
}

/// Stands in for a session that could not even be built (bad forward address): it fails at once.
final class FailedSession: TunnelSessionBase {
    unowned let loop: EventLoop
    let error: String
    init(manager: TunnelManager, loop: EventLoop, resolver: Resolver, error: String) {
        self.loop = loop
        self.error = error
        super.init(loop: loop, resolver: resolver, manager: manager, logger: manager.logger)
    }
    override func start() { loop.deferred { [weak self] in if let self { self.end(self.error) } } }
}

func signalName(_ signo: Int32) -> String {
    switch signo {
    case 2: return "SIGINT"
    case 15: return "SIGTERM"
    case 1: return "SIGHUP"
    default: return "signal \(signo)"
    }
}
