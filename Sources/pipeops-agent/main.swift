import Agent
import ArgumentParser
import Glibc
import Logging
import Reactor

struct PipeOpsAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeops-agent",
        abstract: "The PipeOps VM agent: registers the cluster and opens the control plane's tunnel.",
        version: AgentVersion.full,
        subcommands: [RunCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the agent (the default).")

    @Option(name: .long, help: "Configuration file (default ~/.pipeops-agent.yaml).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, warning, error.")
    var logLevel: String?

    @Option(name: .long, help: "Log format: json or console (default: console on a terminal, else json).")
    var logFormat: String?

    func run() throws {
        let levelText = logLevel ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError("--log-level: '\(levelText)' is not one of trace, debug, info, warning, error")
        }
        LineLogHandler.bootstrap(level: level, format: LineLogHandler.defaultFormat(requested: logFormat))
        var log = Logger(label: "main")
        log[metadataKey: "component"] = "main"
        let limit = Socket.raiseOpenFileLimit()
        let loop = try EventLoop(logger: { var l = Logger(label: "reactor"); l.logLevel = level; return l }())
        let agent = Agent(loop: loop)
        // Signals first, before any helper thread exists, so all of them inherit the mask.
        try loop.watchLifecycleSignals(
            onShutdown: { signo in agent.shutdown(signal: signo) { loop.stop() } },
            onReload: { agent.reload() })
        log.info("pipeops-agent \(AgentVersion.version) starting", metadata: ["fd_limit": "\(limit)"])
        agent.start()
        loop.run()
        log.info("pipeops-agent stopped")
    }
}

PipeOpsAgent.main()
