import Logging
import Reactor

/// With `state.backend: secret`, what has to happen before this agent may register, heartbeat
/// and open its tunnel: its state read from the Secret (asynchronously; each read has a
/// deadline, and a failed read is retried every few seconds while `/ready` says why), then the
/// Lease won (only one active agent per cluster; the others stand by). On winning, the Secret
/// is read again (the previous leader may have registered or had its token rotated) and the
/// agent is activated; on losing the Lease, deactivated. (With the file backend the state is
/// read in `Agent.init` and none of this exists.)
final class SecretActivation {
    enum Phase: Equatable {
        /// Reading (or re-reading) the Secret; the last failure, if any.
        case loadingState(lastError: String?)
        /// State known; the Lease decides (`election.role` says where it stands).
        case electing
        case active
    }

    unowned let loop: EventLoop
    let secret: StateSecret
    let client: KubernetesClient
    let configuredAgentID: String?
    /// `POD_NAME` (the downward API), else the host name: half of the Lease identity.
    let podName: String
    let logger: Logger
    var timing = LeaseElection.Timing()
    var loadRetry = TimeAmount.seconds(5)
    private(set) var phase: Phase = .loadingState(lastError: nil)
    private(set) var election: LeaseElection?
    private var retryTimer: LoopTimer?
    private var stopped = false

    /// The state as read, before any decision (so `/api` shows the agent ID of a standby).
    var onStateLoaded: (AgentState) -> Void = { _ in }
    var onActivate: (AgentState) -> Void = { _ in }
    var onDeactivate: (_ why: String) -> Void = { _ in }

    init(loop: EventLoop, client: KubernetesClient, namespace: String, configuredAgentID: String?, podName: String, logger: Logger) {
        self.loop = loop
        self.client = client
        self.configuredAgentID = configuredAgentID
        self.podName = podName
        var l = logger
        l[metadataKey: "component"] = "state"
        self.logger = l
        secret = StateSecret(loop: loop, client: client, namespace: namespace, logger: l)
    }

    var isActive: Bool { phase == .active }

    func start() {
        load { [weak self] state in
            guard let self else { return }
            self.onStateLoaded(state)
            // client-go's identity is the host name plus a UUID; ours names the pod and the agent.
            let election = LeaseElection(loop: self.loop, client: self.client, namespace: self.secret.namespace,
                                         identity: "\(self.podName)_\(state.agentID)", timing: self.timing, logger: self.logger)
            election.onStartedLeading = { [weak self] in self?.startedLeading() }
            election.onStoppedLeading = { [weak self] why in self?.stoppedLeading(why) }
            self.election = election
            self.phase = .electing
            election.start()
        }
    }

    func stop() {
        stopped = true
        retryTimer?.cancel()
        election?.stop()
    }

    func save(_ state: AgentState) { secret.save(state) }

    private func startedLeading() {
        load { [weak self] state in
            guard let self, self.election?.role == .leading else { return }
            self.phase = .active
            self.onActivate(state)
        }
    }

    private func stoppedLeading(_ why: String) {
        let wasActive = phase == .active
        phase = .electing
        if wasActive { onDeactivate(why) }
    }

    /// Reads the Secret until it works, then calls `done` with the state.
    private func load(_ done: @escaping (AgentState) -> Void) {
        guard !stopped else { return }
        phase = .loadingState(lastError: phase.lastLoadError)
        secret.load(configuredAgentID: configuredAgentID) { [weak self] result in
            guard let self, !self.stopped else { return }
            switch result {
            case .success(let (state, warnings)):
                for w in warnings { self.logger.warning("state: \(w)") }
                self.logger.info("state read from the Secret", metadata: ["secret": "\(self.secret.displayName)",
                                                                          "agent_id": "\(state.agentID)",
                                                                          "cluster_id": "\(state.clusterID ?? "-")"])
                self.phase = .electing
                done(state)
            case .failure(let error):
                let why = "cannot read the state Secret \(self.secret.displayName): \(error)"
                self.logger.error("state: \(why); retrying", metadata: ["retry_in": "\(self.loadRetry)"])
                self.phase = .loadingState(lastError: why)
                self.retryTimer = self.loop.schedule(in: self.loadRetry) { [weak self] in self?.load(done) }
            }
        }
    }

    /// `/ready`'s `state` and `leader` checks; while not active, `registered` and
    /// `control_plane` say why nothing was started (instead of "standalone").
    func addChecks(to checks: inout [String: ReadinessCheck], controlPlaneConfigured: Bool) {
        switch phase {
        case .loadingState(let error):
            checks["state"] = ReadinessCheck(ok: false, detail: error ?? "reading the Secret \(secret.displayName)")
        case .electing, .active:
            checks["state"] = secret.lastSaveError.map { ReadinessCheck(ok: false, detail: "cannot write the Secret \(secret.displayName): \($0)") }
                ?? ReadinessCheck(ok: true, detail: "Secret \(secret.displayName)")
        }
        let leader: ReadinessCheck
        switch election?.role {
        case nil: leader = ReadinessCheck(ok: false, detail: "waiting for the state before competing for the Lease")
        case .leading?: leader = ReadinessCheck(ok: true, detail: "leading: Lease \(secret.namespace)/\(LeaseElection.name) held by \(election?.identity ?? "?")")
        case .standby(let holder, let until)?: leader = ReadinessCheck(ok: false, detail: "standby: lease held by \(holder) until \(until)")
        case .candidate(let error)?: leader = ReadinessCheck(ok: false, detail: "waiting for the Lease" + (error.map { ": \($0)" } ?? ""))
        }
        checks["leader"] = leader
        if !isActive && controlPlaneConfigured {
            checks["registered"] = ReadinessCheck(ok: false, detail: "not started: \(leader.ok ? "reading the state" : leader.detail)")
            checks["control_plane"] = checks["registered"]
        }
    }
}

extension SecretActivation.Phase {
    var lastLoadError: String? {
        if case .loadingState(let e) = self { return e }
        return nil
    }
}

extension StateBackend {
    /// `state.backend` when set; otherwise the Secret when the Kubernetes client runs in
    /// cluster (a pod), else the file. The second value says why, for the startup log.
    static func choose(_ configured: StateBackend?, kubernetes: KubernetesMonitor?) -> (StateBackend, String) {
        if let configured { return (configured, "state.backend") }
        if case .use(let access)? = kubernetes?.plan, access.source == .inCluster {
            return (.secret, "automatic: in a pod (in-cluster Kubernetes client)")
        }
        return (.file, "automatic: not in a pod")
    }
}

/// `state.backend: secret` without a usable Kubernetes client: the agent cannot start.
struct StateBackendError: Error, CustomStringConvertible {
    let description: String
}
