import CShims
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
    public internal(set) var state: AgentState
    /// `file` or `secret` (and why), decided at start; see Agent+State.swift.
    let stateBackend: (StateBackend, why: String)
    /// With the Secret: reads the state, then the Lease decides whether this agent is active.
    var activation: SecretActivation?

    let resolver: Resolver
    let connector: HTTPConnector
    let proxies: HTTPProxySettings
    let httpClient: HTTPClient
    public internal(set) var controlPlane: ControlPlaneClient?
    public internal(set) var tunnel: TunnelManager?
    public private(set) var server: HTTPServer?
    /// A second listener when `realtime.websocket_port` differs from `agent.port`.
    public private(set) var realtimeServer: HTTPServer?
    /// Everything that happened, once, for the hub, SSE and the dashboard (with a replay ring).
    let bus: EventBus
    let realtimeClients: RealtimeClients
    private(set) var hub: RealtimeHub?
    private(set) var realtimeRoutes: RealtimeRoutes?
    let logStream: LogStream?
    private(set) var access: AccessPolicy?
    private var healthUpdateTimer: LoopTimer?
    private var clusterPushTimer: LoopTimer?
    var controlPlaneStartTimer: LoopTimer?
    let startNanoseconds = shim_realtime_ns()
    /// The cluster as the Kubernetes client sees it (a stand-in until one is configured).
    var kubernetesSummary: () -> KubernetesSummary = { KubernetesSummary() }
    /// Follows a pod's log for the hub and SSE; nil without a Kubernetes client.
    var followPodLog: ((PodLogRequest, _ onLine: @escaping (String) -> Void, _ onEnd: @escaping (String) -> Void) -> (() -> Void))?
    /// `/api/metrics/runtime`'s object (also inside the status snapshot and `metrics` pushes).
    var runtimeJSON: () -> JSONValue = { .object([:]) }
    /// `/api/status/features`' `features` object.
    var featuresJSON: () -> JSONValue = { .object([:]) }
    public private(set) var kubernetes: KubernetesMonitor?
    /// Metrics, runtime numbers and features (TelemetryRoutes sets the two closures above).
    public let telemetry = Telemetry()
    private var shuttingDown = false
    /// Why the SSH tunnel could not start (bad server address or key); reported on `/ready`.
    private var tunnelStartError: String?

    /// `logTap`: the log handler's copy of every line, for the live log streams (nil: none).
    public init(loop: EventLoop, config: AgentConfig, environment: [String: String], logTap: LogTap? = nil) throws {
        self.loop = loop
        self.config = config
        self.environment = environment
        realtimeClients = RealtimeClients(limit: config.realtime.maxConnections)
        let bus = EventBus()
        self.bus = bus
        logStream = logTap.map { LogStream(tap: $0, bus: bus) }
        var l = Logger(label: "agent")
        l[metadataKey: "component"] = "agent"
        logger = l
        stateStore = StateStore(path: config.state.path)
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
        httpClient.name = "control-plane client"
        kubernetes = KubernetesMonitor(loop: loop, settings: config.kubernetes, environment: environment,
                                       resolver: resolver, proxies: proxies, logger: l)
        let prepared = try Self.prepareState(config: config, store: stateStore, kubernetes: kubernetes, environment: environment, logger: l)
        state = prepared.state
        stateBackend = prepared.backend
        activation = prepared.activation
        if let k = kubernetes {
            kubernetesSummary = { k.summary }
            k.onEvent = { [bus] event in bus.publish("kubernetes_event", event.json) }
            k.onChange = { [weak self] in self?.clusterChanged() }
            if k.client != nil { followPodLog = { request, onLine, onEnd in k.followLog(request, onLine: onLine, onEnd: onEnd) } }
        }
    }

    public func start() {
        if let logStream {
            let waker = loop.makeWaker { [weak logStream] in logStream?.drain() }
            logStream.tap.setWake { waker.wake() }
        }
        logger.info("agent starting", metadata: ["version": "\(AgentVersion.version)", "agent_id": "\(state.agentID)",
                                                 "api_url": "\(config.pipeops.apiURL.isEmpty ? "(standalone)" : URLUserinfo.redacted(config.pipeops.apiURL))",
                                                 "state": "\(stateDescription)"])
        startServer()
        kubernetes?.start()
        startActiveWork()
    }

    /// How long the first registration waits for the cluster's `/version` (control-plane-api.md:
    /// the register body carries `k8s_version`); a cluster that does not answer by then does not
    /// hold registration back.
    static let kubernetesVersionWait: TimeAmount = .seconds(5)

    private func startServer() {
        let router = HTTPRouter()
        let access = AccessPolicy(loop: loop, token: { [unowned self] in self.apiToken }, metricsAuth: config.server.metricsAuth,
                                  rateLimit: config.server.rateLimit, corsEnabled: config.server.corsEnabled)
        self.access = access
        router.admit = { [access] request, responder in access.admit(request, responder) }
        StatusRoutes(agent: self).install(on: router)
        TelemetryRoutes(agent: self).install(on: router)
        ConnectivityRoutes(agent: self).install(on: router)
        if config.server.enableWebSocket {
            let hub = RealtimeHub(loop: loop, bus: bus, clients: realtimeClients, silenceLimit: config.realtime.connectionTimeout,
                                  status: { [unowned self] in self.detailedStatusJSON() },
                                  metrics: { [unowned self] in self.metricsPushJSON() })
            hub.followPodLog = followPodLog.map { follow in { req, line, end in follow(req, line, end) } }
            if let logStream {
                logStream.hubDeliver = { [weak hub] records in hub?.deliver(logs: records) }
                hub.onLogListeners = { [weak logStream] on in logStream?.setHubListening(on) }
            }
            self.hub = hub
            router.add("GET", "/ws") { [weak hub] req, res in
                guard let hub else { res.sendError(503, "shutting down"); return }
                hub.accept(req, res)
            }
        }
        if config.server.enableSSE {
            let routes = RealtimeRoutes(agent: self, bus: bus, clients: realtimeClients, logs: logStream)
            routes.install(on: router)
            realtimeRoutes = routes
            healthUpdateTimer = loop.schedule(in: config.realtime.sseHeartbeat) { [weak self] in self?.publishHealthUpdate() }
        }
        if config.server.enableDashboard { DashboardRoutes().install(on: router) }
        var serverConfig = HTTPServerConfiguration()
        if config.server.corsEnabled { serverConfig.responseHeaders.add("Access-Control-Allow-Origin", "*") }
        do {
            let address = try SocketAddress(ip: config.agent.bindAddress, port: config.agent.port)
            let s = try HTTPServer(loop: loop, address: address, configuration: serverConfig, router: router)
            s.onResponse = telemetry.recordHTTPResponse
            server = s
            logger.info("HTTP server listening", metadata: ["port": "\(s.port)", "address": "\(config.agent.bindAddress)"])
            if let wsPort = config.realtime.websocketPort, wsPort != config.agent.port, wsPort != s.port {
                let rs = try HTTPServer(loop: loop, address: SocketAddress(ip: config.agent.bindAddress, port: wsPort), configuration: serverConfig, router: router)
                rs.onResponse = telemetry.recordHTTPResponse
                realtimeServer = rs
                logger.info("realtime listener (realtime.websocket_port): same routes", metadata: ["port": "\(rs.port)"])
            }
        } catch {
            logger.error("cannot start the HTTP server", metadata: ["port": "\(config.agent.port)", "address": "\(config.agent.bindAddress)",
                                                                   "error": "\(error)"])
        }
    }

    /// The token `/api`, `/ws` and `/dashboard` want: `server.api_token`, else the cluster token
    /// (the rotated one once the control plane has issued it).
    var apiToken: String? {
        if let t = config.server.apiToken, !t.isEmpty { return t }
        if let t = state.clusterToken, !t.isEmpty { return t }
        return config.pipeops.token
    }

    /// Nodes or pods changed: hub clients get a fresh `status`, at most once a second (a
    /// rollout changes many pods at once).
    private func clusterChanged() {
        guard clusterPushTimer == nil, hub?.connectionCount ?? 0 > 0 else { return }
        clusterPushTimer = loop.schedule(in: .seconds(1)) { [weak self] in
            self?.clusterPushTimer = nil
            self?.hub?.pushStatus()
        }
    }

    /// `health_update` every `realtime.sse_heartbeat`, for live clients that want a pulse.
    private func publishHealthUpdate() {
        let s = status()
        bus.publish("health_update", s.readinessJSON)
        healthUpdateTimer = loop.schedule(in: config.realtime.sseHeartbeat) { [weak self] in self?.publishHealthUpdate() }
    }

    func startTunnel() {
        guard config.tunnel.enabled else { return }
        // Where each forward goes (in a pod, the API server and the node's kubelet; DefaultForwards).
        for forward in config.tunnel.forwards {
            logger.info("tunnel forward", metadata: ["forward": "\(forward.name)", "local_addr": "\(forward.localAddr)"])
        }
        if config.tunnel.mode == .ssh { startSSHTunnel(); return }
        let manager = TunnelManager(loop: loop, forwards: config.tunnel.forwards, inactivityTimeout: config.tunnel.inactivityTimeout,
                                    limits: TunnelLimits(config.tunnel), logger: logger) { [unowned self] desired, manager in
            do {
                return try ChiselSession(loop: self.loop, desired: desired, manager: manager, connector: self.connector,
                                         proxies: self.proxies, resolver: self.resolver, logger: manager.logger)
            } catch {
                return FailedSession(manager: manager, loop: self.loop, resolver: self.resolver, error: "\(error)")
            }
        }
        tunnel = manager
        observe(manager)
    }

    /// Tunnel phases and forward connections go onto the event bus.
    private func observe(_ manager: TunnelManager) {
        manager.onEvent = { [weak self, weak manager] event in
            guard let self else { return }
            switch event {
            case .phase(let p, let previous, let detail, let failure):
                self.bus.publish("tunnel_state", .object([
                    "state": .string(p.rawValue), "previous": .string(previous.rawValue),
                    "server": manager?.desired.map { .string("\($0.endpoint)") }, "error": detail.map { .string($0) },
                    "error_chain": failure.map(ErrorChain.json),
                ]))
            case .forwardOpened(let forward, let remotePort, let active):
                self.bus.publish("forward_opened", .object([
                    "forward": .string(forward), "remote_port": .int(remotePort), "active_connections": .int(active),
                ]))
            case .forwardClosed(let forward, let traffic, let duration, let active):
                self.bus.publish("forward_closed", .object([
                    "forward": .string(forward), "bytes_in": .int(traffic.toLocal), "bytes_out": .int(traffic.toTunnel),
                    "duration_ms": .int(duration.nanoseconds / 1_000_000), "active_connections": .int(active),
                ]))
            }
        }
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
                                    limits: TunnelLimits(config.tunnel), logger: logger) { [unowned self] desired, manager in
            SSHTunnelSession(loop: self.loop, desired: desired, manager: manager, resolver: self.resolver,
                             privateKey: key, logger: manager.logger)
        }
        tunnel = manager
        observe(manager)
        manager.openStatic(desired)
    }

    func startControlPlane(waitingForKubernetesUntil deadline: Deadline) {
        guard !shuttingDown else { return }
        if let k = kubernetes, k.client != nil, k.version == nil, loop.now < deadline, !config.pipeops.apiURL.isEmpty {
            controlPlaneStartTimer = loop.schedule(in: .milliseconds(100)) { [weak self] in
                self?.startControlPlane(waitingForKubernetesUntil: deadline)
            }
            return
        }
        guard !config.pipeops.apiURL.isEmpty else {
            logger.info("no pipeops.api_url: running standalone, without a control plane")
            return
        }
        let transport = HTTPControlPlaneTransport(client: httpClient, baseURL: config.pipeops.apiURL)
        let cp = ControlPlaneClient(loop: loop, config: config, state: state, persist: { [weak self] in self?.persist($0) },
                                    transport: transport, environment: environment, logger: logger)
        if config.tunnel.mode == .chisel {
            cp.onDirective = { [weak self] directive in self?.tunnel?.apply(directive) }
        }
        cp.tunnelReport = { [weak self] in self?.tunnelReport() ?? .init(status: "disconnected") }
        cp.onRegistered = { [weak self, weak cp] clusterID in
            guard let self, let cp else { return }
            self.state = cp.state
            self.bus.publish("registration", .object([
                "cluster_id": .string(clusterID), "mode": .string(cp.lastRegistrationMode),
                "api_server": cp.registrationInfo["api_server"].map { .string($0) },
            ]))
        }
        cp.clusterCounts = { [weak self] in self?.kubernetes?.clusterCounts ?? (nil, nil) }
        cp.kubernetesVersion = { [weak self] in self?.kubernetes?.version }
        cp.serviceAccountToken = { [weak self] in self?.kubernetes?.serviceAccountToken }
        controlPlane = cp
        cp.start()
    }

    func tunnelReport() -> ControlPlaneClient.TunnelReport {
        guard let t = tunnel else { return .init(status: "disconnected") }
        // Only forwards with an allocated port are reported.
        let forwards = t.stats.filter { $0.value.remotePort > 0 }.sorted { $0.key < $1.key }
        return .init(status: t.heartbeatStatus, forwards: forwards.map { (name: $0.key, stats: $0.value) })
    }

    /// What the agent knows about itself now: every status surface reads this.
    func status() -> AgentStatus {
        var checks: [String: ReadinessCheck] = [:]
        var registration = AgentStatus.Registration(mode: "standalone", registered: false)
        if let cp = controlPlane {
            registration = .init(mode: "control_plane", registered: cp.isRegistered, clusterID: cp.state.clusterID,
                                 apiServer: cp.registrationInfo["api_server"], error: cp.lastRegistrationError,
                                 errorChain: cp.lastRegistrationFailure.map(ErrorChain.links) ?? [])
            checks["registered"] = cp.isRegistered
                ? ReadinessCheck(ok: true, detail: "cluster \(cp.state.clusterID ?? "?")")
                : ReadinessCheck(ok: false, detail: cp.lastRegistrationError ?? "registration in progress", failure: cp.lastRegistrationFailure)
            if !cp.isRegistered {
                checks["control_plane"] = ReadinessCheck(ok: false, detail: cp.lastRegistrationError ?? "not registered yet",
                                                         failure: cp.lastRegistrationFailure)
            } else if cp.consecutiveHeartbeatFailures >= 3 {
                checks["control_plane"] = ReadinessCheck(ok: false, detail: "degraded: \(cp.consecutiveHeartbeatFailures) heartbeats failed in a row: \(cp.lastHeartbeatError ?? "")",
                                                         failure: cp.lastHeartbeatFailure)
            } else {
                checks["control_plane"] = ReadinessCheck(ok: true, detail: cp.lastHeartbeatError.map { "last heartbeat failed: \($0)" } ?? "heartbeats ok")
            }
        } else {
            checks["registered"] = ReadinessCheck(ok: true, detail: "standalone (no control plane configured)")
            checks["control_plane"] = ReadinessCheck(ok: true, detail: "standalone (no control plane configured)")
        }
        activation?.addChecks(to: &checks, controlPlaneConfigured: !config.pipeops.apiURL.isEmpty)
        var tunnelStatus = AgentStatus.Tunnel(state: config.tunnel.enabled ? "disconnected" : "disabled", reconnects: 0, forwards: [])
        if let t = tunnel {
            if let e = t.allocationError {
                checks["tunnel"] = ReadinessCheck(ok: false, detail: e)
            } else {
                switch t.phase {
                case .connected: checks["tunnel"] = ReadinessCheck(ok: true, detail: "up to \(t.desired.map { "\($0.endpoint)" } ?? "?")")
                case .idle: checks["tunnel"] = ReadinessCheck(ok: true, detail: "idle (not requested)")
                case .connecting: checks["tunnel"] = ReadinessCheck(ok: false, detail: "connecting" + (t.lastError.map { " (last error: \($0))" } ?? ""),
                                                                    failure: t.lastFailure)
                case .disconnected: checks["tunnel"] = ReadinessCheck(ok: false, detail: "down: \(t.lastError ?? "unknown")", failure: t.lastFailure)
                }
            }
            let stats = t.stats
            let sinceAgo = UInt64(max(0, (loop.now - t.since).nanoseconds))
            tunnelStatus = .init(state: t.phase.rawValue, server: t.desired.map { "\($0.endpoint)" },
                                 sinceNanoseconds: shim_realtime_ns() &- sinceAgo, reconnects: t.reconnects, lastError: t.lastError,
                                 lastErrorChain: t.lastFailure.map(ErrorChain.links) ?? [],
                                 forwards: config.tunnel.forwards.map { .init(name: $0.name, localAddr: $0.localAddr, stats: stats[$0.name] ?? ForwardStats()) })
        } else if let e = tunnelStartError {
            checks["tunnel"] = ReadinessCheck(ok: false, detail: e)
            tunnelStatus.lastError = e
        } else {
            checks["tunnel"] = ReadinessCheck(ok: true, detail: config.tunnel.enabled ? "mode \(config.tunnel.mode.rawValue)" : "disabled")
        }
        let kubernetes = kubernetesSummary()
        checks["kubernetes"] = kubernetes.available
            ? ReadinessCheck(ok: kubernetes.reachable && kubernetes.synced, detail: kubernetes.detail)
            : ReadinessCheck(ok: true, detail: "not checked: \(kubernetes.detail)")
        return AgentStatus(agentID: state.agentID, name: config.agent.name, clusterName: config.agent.clusterName,
                           startNanoseconds: startNanoseconds, nowNanoseconds: shim_realtime_ns(), registration: registration,
                           checks: checks, tunnel: tunnelStatus, kubernetes: kubernetes)
    }

    /// `/api/health/detailed` and the hub's `status`.
    func detailedStatusJSON() -> JSONValue {
        status().detailedJSON(runtime: runtimeJSON(), features: featuresJSON())
    }

    /// The hub's `metrics` message: runtime figures and the tunnel with its byte counters.
    func metricsPushJSON() -> JSONValue {
        .object(["runtime": runtimeJSON(), "tunnel": status().tunnelJSON])
    }

    /// Stops accepting work and closes every connection (closing frames are queued, not waited
    /// for), then calls `done` at the end of this loop turn. A second call does nothing.
    public func shutdown(signal: Int32, done: @escaping () -> Void) {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.info("shutdown requested", metadata: ["signal": "\(signalName(signal))"])
        activation?.stop()
        controlPlane?.stop()
        tunnel?.shutdown()
        hub?.shutdown()
        healthUpdateTimer?.cancel()
        controlPlaneStartTimer?.cancel()
        kubernetes?.stop()
        server?.close()
        realtimeServer?.close()
        httpClient.closeIdle()
        // Lookups still waiting for DNS end as "cancelled", so their callers finish cleanly.
        resolver.cancelAll()
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
    override func start() { loop.deferred { [weak self] in if let self { self.end(TunnelError(self.error)) } } }
}

func signalName(_ signo: Int32) -> String {
    switch signo {
    case 2: return "SIGINT"
    case 15: return "SIGTERM"
    case 1: return "SIGHUP"
    default: return "signal \(signo)"
    }
}
