import Logging
import Reactor

/// Where the agent's state lives and when the agent may act on it (`state.backend`): with the
/// file, the state is read in `init` and the agent is active at once; with the Secret, the
/// state is read on the loop and the Lease decides (SecretActivation).
extension Agent {
    struct PreparedState {
        var state: AgentState
        var backend: (StateBackend, why: String)
        var activation: SecretActivation?
    }

    static func prepareState(config: AgentConfig, store: StateStore, kubernetes: KubernetesMonitor?,
                             environment: [String: String], logger: Logger) throws -> PreparedState {
        let (backend, why) = StateBackend.choose(config.state.backend, kubernetes: kubernetes)
        switch backend {
        case .file:
            let (state, warnings) = try store.bootstrap(configuredAgentID: config.agent.id)
            for w in warnings { logger.warning("state: \(w)") }
            return PreparedState(state: state, backend: (backend, why), activation: nil)
        case .secret:
            guard let client = kubernetes?.client else {
                let reason: String
                switch kubernetes?.plan {
                case .off(let r)?, .failed(let r)?: reason = r
                default: reason = "no Kubernetes client"
                }
                throw StateBackendError(description: "state.backend is secret, but the Kubernetes client cannot run: \(reason)")
            }
            let activation = SecretActivation(loop: client.loop, client: client, namespace: config.kubernetes.namespace,
                                              configuredAgentID: config.agent.id,
                                              podName: HostInfo.podName(environment: environment), logger: logger)
            // Until the Secret is read: the configured ID, or none yet.
            return PreparedState(state: AgentState(agentID: config.agent.id ?? "", updatedAt: 0), backend: (backend, why),
                                 activation: activation)
        }
    }

    /// For the startup log: which backend, where, and why it was chosen.
    var stateDescription: String {
        switch stateBackend.0 {
        case .file: return "file \(config.state.path) (\(stateBackend.why))"
        case .secret: return "secret \(config.kubernetes.namespace)/\(StateSecret.name), Lease \(LeaseElection.name) (\(stateBackend.why))"
        }
    }

    /// Registration, heartbeats and the tunnel: at once with the file; with the Secret, once
    /// the state is read and the Lease won, and stopped again when the Lease is lost.
    func startActiveWork() {
        guard let activation else {
            startTunnel()
            startControlPlane(waitingForKubernetesUntil: loop.now + Self.kubernetesVersionWait)
            return
        }
        activation.onStateLoaded = { [weak self] state in self?.state = state }
        activation.onActivate = { [weak self] state in
            guard let self else { return }
            self.state = state
            self.startTunnel()
            self.startControlPlane(waitingForKubernetesUntil: self.loop.now + Self.kubernetesVersionWait)
        }
        activation.onDeactivate = { [weak self] _ in self?.stopActiveWork() }
        activation.start()
    }

    /// The Lease is lost: this agent may no longer be the active one.
    func stopActiveWork() {
        controlPlaneStartTimer?.cancel()
        controlPlaneStartTimer = nil
        controlPlane?.stop()
        controlPlane = nil
        tunnel?.shutdown()
        tunnel = nil
    }

    /// After a registration (cluster ID, a rotated token).
    func persist(_ state: AgentState) {
        if let activation {
            activation.save(state)
            return
        }
        do { try stateStore.save(state) } catch {
            logger.error("cannot persist agent state", metadata: ["error": "\(error)"])
        }
    }
}
