import Logging
import Reactor

/// The PipeOps agent: owns every long-lived part (control-plane client, tunnel manager, HTTP
/// server, Kubernetes watcher) and runs them on one event loop.
public final class Agent {
    public let loop: EventLoop
    public let config: AgentConfig
    let environment: [String: String]
    let logger: Logger
    let stateStore: StateStore
    public private(set) var state: AgentState
    private var shuttingDown = false

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
    }

    public func start() {
        logger.info("agent starting", metadata: ["version": "\(AgentVersion.version)", "agent_id": "\(state.agentID)",
                                                 "api_url": "\(config.pipeops.apiURL.isEmpty ? "(standalone)" : config.pipeops.apiURL)",
                                                 "state": "\(config.state.path)"])
    }

    /// Stops accepting work, closes connections, then calls `done`. Bounded: `done` runs within
    /// `grace` even if a peer does not cooperate.
    public func shutdown(signal: Int32, grace: TimeAmount = .milliseconds(800), done: @escaping () -> Void) {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.info("shutdown requested", metadata: ["signal": "\(signalName(signal))"])
        var finished = false
        let finish = {
            guard !finished else { return }
            finished = true
            done()
        }
        loop.schedule(in: grace) { finish() }
        loop.deferred { finish() }
    }

    public func reload() {
        logger.info("reload requested (SIGHUP)")
    }
}

func signalName(_ signo: Int32) -> String {
    switch signo {
    case 2: return "SIGINT"
    case 15: return "SIGTERM"
    case 1: return "SIGHUP"
    default: return "signal \(signo)"
    }
}
