import Logging
import Reactor

/// Registration, heartbeat and tunnel-status poll, with every reaction of control-plane-api.md:
/// backoff with jitter, re-registration on 401/403/404, never giving up, the real tunnel state
/// in heartbeats, `poll_frequency` honoured and token rotation persisted.
public final class ControlPlaneClient {
    public struct TunnelReport {
        public var status: String                         // connected|connecting|disconnected|idle
        public var forwards: [(name: String, stats: ForwardStats)]
        public init(status: String, forwards: [(name: String, stats: ForwardStats)] = []) {
            self.status = status
            self.forwards = forwards
        }
    }

    unowned let loop: EventLoop
    let config: AgentConfig
    let transport: ControlPlaneTransport
    /// Keeps the state (the file, or the Secret) after each registration.
    let persist: (AgentState) -> Void
    let logger: Logger
    let environment: [String: String]
    let startedAt = Deadline.now()

    public private(set) var state: AgentState
    public private(set) var isRegistered = false
    public private(set) var lastRegistrationFailure: ControlPlaneError?
    public private(set) var consecutiveHeartbeatFailures = 0
    public private(set) var lastHeartbeatFailure: ControlPlaneError?
    public private(set) var heartbeatsSent = 0
    public private(set) var lastPollFailure: ControlPlaneError?
    public var lastRegistrationError: String? { lastRegistrationFailure?.description }
    public var lastHeartbeatError: String? { lastHeartbeatFailure?.description }
    public var lastPollError: String? { lastPollFailure?.description }
    public private(set) var pollInterval: TimeAmount
    public private(set) var registrationInfo: [String: String] = [:]
    /// "fresh" or "resume": how the last registration attempt went in.
    public private(set) var lastRegistrationMode = "fresh"

    /// The tunnel manager hears every poll's answer here.
    public var onDirective: ((TunnelDirective) -> Void)?
    public var onRegistered: ((String) -> Void)?
    public var tunnelReport: () -> TunnelReport = { TunnelReport(status: "disconnected") }
    public var clusterCounts: () -> (nodes: Int?, pods: Int?) = { (nil, nil) }
    public var kubernetesVersion: () -> String? = { nil }
    public var serviceAccountToken: () -> String? = { nil }

    private var registerBackoff = Backoff(initial: .seconds(1), maximum: .seconds(300))
    private var timers: [String: LoopTimer] = [:]
    private var stopped = false
    private var registering = false

    public init(loop: EventLoop, config: AgentConfig, state: AgentState, persist: @escaping (AgentState) -> Void,
                transport: ControlPlaneTransport, environment: [String: String], logger: Logger) {
        self.loop = loop
        self.config = config
        self.state = state
        self.persist = persist
        self.transport = transport
        self.environment = environment
        var l = logger
        l[metadataKey: "component"] = "control-plane"
        self.logger = l
        self.pollInterval = config.tunnel.pollInterval.nanoseconds > 0 ? config.tunnel.pollInterval : .seconds(5)
    }

    /// The token in use: a rotated one from the control plane, else the configured one.
    public var token: String { state.clusterToken ?? config.pipeops.token ?? "" }

    /// Heartbeat health as `/ready` reports it: degraded after three failures in a row.
    public var controlPlaneHealthy: Bool { isRegistered && consecutiveHeartbeatFailures < 3 }

    public func start() {
        register(resume: state.clusterID != nil)
        // The poll only steers the chisel tunnel; with none (disabled, or SSH mode) nobody reads it.
        if config.tunnel.enabled && config.tunnel.mode == .chisel { poll() }
    }

    public func stop() {
        stopped = true
        for t in timers.values { t.cancel() }
        timers.removeAll()
    }

    private func schedule(_ name: String, in delay: TimeAmount, _ body: @escaping () -> Void) {
        timers[name]?.cancel()
        timers[name] = loop.schedule(in: delay) { [weak self] in
            guard let self, !self.stopped else { return }
            self.timers[name] = nil
            body()
        }
    }

    // MARK: Register

    func registerBody(resume: Bool) -> RegisterRequest {
        let host = HostInfo.current(environment: environment)
        var labels = config.agent.labels
        labels["hostname"] = host.hostname
        labels["agent.pipeops.io/version"] = AgentVersion.version
        var ports: [String: Int] = [:]
        for f in config.tunnel.forwards {
            if let port = try? SocketAddress.splitHostPort(f.localAddr).port { ports[f.name] = port }
        }
        return RegisterRequest(
            agentID: state.agentID, name: config.agent.clusterName, clusterID: resume ? state.clusterID : nil,
            hostname: host.hostname, agentVersion: AgentVersion.version, k8sVersion: kubernetesVersion(),
            k8sServiceToken: serviceAccountToken(), labels: labels, tunnelPortConfig: ports,
            serverSpecs: ServerSpecs(cpuCores: host.cpuCores, memoryGB: host.memoryGB, diskGB: host.diskGB, os: host.os),
            metadata: ["agent_mode": "vm-agent", "registration_mode": resume ? "resume" : "fresh"])
    }

    private func register(resume: Bool) {
        lastRegistrationMode = resume ? "resume" : "fresh"
        guard !stopped, !registering else { return }
        registering = true
        isRegistered = false
        let body = registerBody(resume: resume).json.bytes
        logger.info("registering with the control plane", metadata: ["mode": "\(resume ? "resume" : "fresh")",
                                                                    "agent_id": "\(state.agentID)", "api_url": "\(URLUserinfo.redacted(config.pipeops.apiURL))"])
        let request = ControlPlaneRequest(call: "register", method: "POST", path: "/api/v1/clusters/agent/register", body: body,
                                          timeout: config.pipeops.timeouts.register)
        transport.send(request, token: token) { [weak self] result in
            guard let self, !self.stopped else { return }
            self.registering = false
            self.handleRegister(result, resume: resume)
        }
    }

    private func handleRegister(_ result: Result<ControlPlaneResponse, ControlPlaneError>, resume: Bool) {
        switch result {
        case .failure(let e):
            retryRegister(resume: resume, reason: e)
        case .success(let r):
            switch r.status {
            case 200, 201, 409:
                var decoded: RegisterResponse?
                var decodeError = "cluster_id is missing"
                do { decoded = try RegisterResponse(json: try JSONParser.parse(r.body)) } catch {
                    decodeError = "the body is not valid JSON (\(error))"
                }
                let clusterID = decoded?.clusterID ?? (r.status == 409 ? state.clusterID : nil)
                guard let clusterID, !clusterID.isEmpty else {
                    let why = decodeError
                    retryRegister(resume: resume, reason: .decode(call: "register", "HTTP \(r.status) but \(why)"))
                    return
                }
                registered(clusterID: clusterID, response: decoded, status: r.status)
            case 401, 403:
                logger.error("the control plane rejected the agent's token; check pipeops.token / PIPEOPS_TOKEN",
                             metadata: ["status": "\(r.status)", "token": "Bearer ***"])
                retryRegister(resume: resume, reason: .status(r.status, message: "token rejected", call: "register"))
            case 404 where resume:
                logger.warning("the control plane does not know cluster \(state.clusterID ?? "-"); registering fresh")
                state.clusterID = nil
                register(resume: false)
            default:
                retryRegister(resume: resume, reason: .status(r.status, body: r.body, call: "register"))
            }
        }
    }

    private func retryRegister(resume: Bool, reason: ControlPlaneError) {
        lastRegistrationFailure = reason
        let delay = registerBackoff.next()
        logger.warning("registration failed; retrying", metadata: ["error": "\(reason)", "retry_in": "\(delay)",
                                                                   "attempt": "\(registerBackoff.attempt)"])
        schedule("register", in: delay) { [weak self] in self?.register(resume: resume) }
    }

    private func registered(clusterID: String, response: RegisterResponse?, status: Int) {
        registerBackoff.reset()
        isRegistered = true
        lastRegistrationFailure = nil
        state.clusterID = clusterID
        if let rotated = response?.rotatedToken, rotated != state.clusterToken {
            state.clusterToken = rotated
            logger.info("control plane issued a new cluster token", metadata: ["token": "Bearer ***"])
        }
        registrationInfo = [:]
        for (k, v) in [("api_server", response?.apiServer), ("tunnel_url", response?.tunnelURL),
                       ("status", response?.status), ("name", response?.name)] {
            if let v { registrationInfo[k] = v }
        }
        state.updatedAt = Timestamp.nowSeconds()
        persist(state)
        logger.info("registered with the control plane", metadata: ["cluster_id": "\(clusterID)", "status": "\(status)"])
        onRegistered?(clusterID)
        heartbeat()
    }

    // MARK: Heartbeat

    private func heartbeat() {
        guard !stopped, isRegistered, let clusterID = state.clusterID else { return }
        let report = tunnelReport()
        let counts = clusterCounts()
        let uptime = Int((Deadline.now() - startedAt).seconds)
        let body = HeartbeatRequest(
            clusterID: clusterID, agentID: state.agentID,
            status: consecutiveHeartbeatFailures >= 3 ? "degraded" : "healthy",
            tunnelStatus: report.status, timestamp: Timestamp.now(),
            metadata: .init(version: AgentVersion.version, uptimeSeconds: uptime, k8sNodes: counts.nodes, k8sPods: counts.pods,
                            forwards: report.forwards.map { .init(name: $0.name, remotePort: $0.stats.remotePort,
                                                                   activeConnections: $0.stats.activeConnections,
                                                                   bytesIn: $0.stats.bytesIn, bytesOut: $0.stats.bytesOut) }))
        let request = ControlPlaneRequest(call: "heartbeat", method: "POST", path: "/api/v1/clusters/agent/\(clusterID)/heartbeat",
                                          body: body.json.bytes, timeout: config.pipeops.timeouts.heartbeat)
        heartbeatsSent += 1
        transport.send(request, token: token) { [weak self] result in
            guard let self, !self.stopped else { return }
            self.handleHeartbeat(result)
        }
    }

    private func handleHeartbeat(_ result: Result<ControlPlaneResponse, ControlPlaneError>) {
        var reason: ControlPlaneError?
        switch result {
        case .failure(let e):
            reason = e
        case .success(let r) where r.status == 200 || r.status == 204:
            if consecutiveHeartbeatFailures > 0 { logger.info("heartbeat recovered") }
            consecutiveHeartbeatFailures = 0
            lastHeartbeatFailure = nil
        case .success(let r) where [401, 403, 404].contains(r.status):
            logger.warning("heartbeat refused; registering again", metadata: ["status": "\(r.status)"])
            lastHeartbeatFailure = .status(r.status, message: "", call: "heartbeat")
            register(resume: true)
            return
        case .success(let r):
            reason = .status(r.status, body: r.body, call: "heartbeat")
        }
        if let reason {
            consecutiveHeartbeatFailures += 1
            lastHeartbeatFailure = reason
            logger.warning("heartbeat failed", metadata: ["error": "\(reason)", "in_a_row": "\(consecutiveHeartbeatFailures)"])
        }
        schedule("heartbeat", in: config.agent.heartbeatInterval) { [weak self] in self?.heartbeat() }
    }

    // MARK: Tunnel-status poll

    private func poll() {
        guard !stopped else { return }
        let request = ControlPlaneRequest(call: "tunnel status", method: "GET", path: "/api/agents/\(state.agentID)/tunnel/status", body: nil,
                                          timeout: config.pipeops.timeouts.poll)
        transport.send(request, token: token) { [weak self] result in
            guard let self, !self.stopped else { return }
            self.handlePoll(result)
            self.schedule("poll", in: self.pollInterval) { [weak self] in self?.poll() }
        }
    }

    private func handlePoll(_ result: Result<ControlPlaneResponse, ControlPlaneError>) {
        switch result {
        case .failure(let e):
            lastPollFailure = e
            logger.warning("tunnel status poll failed", metadata: ["error": "\(e)"])
        case .success(let r) where r.status == 404 || (r.status == 200 && r.body.allSatisfy { $0 == 0x20 || $0 == 0x0a || $0 == 0x0d }):
            lastPollFailure = nil
            logger.debug("no tunnel requested yet", metadata: ["status": "\(r.status)"])
            onDirective?(.idle)
        case .success(let r) where r.status == 200:
            do {
                let status = try TunnelStatusResponse(json: try JSONParser.parse(r.body))
                lastPollFailure = nil
                if let f = status.pollFrequency, f > 0, f.isFinite {
                    let next = TimeAmount.fractionalSeconds(min(f, 3600))
                    if next != pollInterval {
                        logger.info("poll interval changed by the control plane", metadata: ["from": "\(pollInterval)", "to": "\(next)"])
                        pollInterval = next
                    }
                }
                let directive = TunnelDirective(status)
                if case .unknown(let s) = directive {
                    logger.warning("unknown tunnel status from the control plane; keeping the current state", metadata: ["status": "\(s)"])
                }
                onDirective?(directive)
            } catch {
                lastPollFailure = .decode(call: "tunnel status", "malformed JSON (\(r.body.count) bytes): \(error)")
                logger.warning("tunnel status response is not valid JSON", metadata: ["bytes": "\(r.body.count)", "error": "\(error)"])
            }
        case .success(let r):
            lastPollFailure = .status(r.status, body: r.body, call: "tunnel status")
            logger.warning("tunnel status poll failed", metadata: ["status": "\(r.status)"])
        }
    }
}

/// The first bytes of a body for an error message, printable only.
func snippet(_ body: [UInt8], limit: Int = 120) -> String {
    let text = String(decoding: body.prefix(limit), as: UTF8.self)
        .map { $0.isASCII && ($0.asciiValue! >= 0x20) ? $0 : " " }
    return String(text) + (body.count > limit ? "…" : "")
}
