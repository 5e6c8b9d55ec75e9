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
        subcommands: [RunCommand.self, ConfigCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

/// Options shared by every command that reads the configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default ~/.pipeops-agent.yaml when it exists).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, warning, error (overrides logging.level).")
    var logLevel: String?

    @Option(name: .long, help: "HTTP port of the agent (overrides agent.port).")
    var port: Int?

    @Option(name: .long, help: "Control-plane URL (overrides pipeops.api_url).")
    var apiURL: String?

    @Option(name: .customLong("set"), help: "Any key, as key=value (e.g. --set tunnel.poll_interval=10s). Repeatable.")
    var settings: [String] = []

    /// Loads file, environment and flags; on error prints it and exits 2.
    func load() throws -> (AgentConfig, [String], [String: String]) {
        let environment = processEnvironment()
        var overrides: [String: String] = [:]
        if let logLevel { overrides["logging.level"] = logLevel }
        if let port { overrides["agent.port"] = String(port) }
        if let apiURL { overrides["pipeops.api_url"] = apiURL }
        for s in settings {
            guard let eq = s.firstIndex(of: "=") else { throw ValidationError("--set \(s): expected key=value") }
            overrides[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        do {
            let (config, warnings) = try ConfigLoader.load(path: config, environment: environment, overrides: overrides)
            return (config, warnings, environment)
        } catch {
            printError("pipeops-agent: \(error)")
            throw ExitCode(2)
        }
    }
}

func printError(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the agent (the default).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Log format: json or console (default: console on a terminal, else logging.format).")
    var logFormat: String?

    func run() throws {
        if let l = options.logLevel, Logger.Level(rawValue: l) == nil || l == "notice" || l == "critical" {
            throw ValidationError("--log-level: '\(l)' is not one of trace, debug, info, warning, error")
        }
        let (config, warnings, environment) = try options.load()
        if !config.pipeops.apiURL.isEmpty {
            do { try config.checkReadyToRun() } catch {
                printError("pipeops-agent: \(error)")
                throw ExitCode(2)
            }
        }
        let level = config.logging.level.loggerLevel
        let format: LineLogHandler.Format
        if let f = logFormat {
            guard let parsed = LineLogHandler.Format(rawValue: f) else { throw ValidationError("--log-format: expected json or console") }
            format = parsed
        } else {
            format = isatty(2) != 0 ? .console : (config.logging.format == .console ? .console : .json)
        }
        LineLogHandler.bootstrap(level: level, format: format)
        var log = Logger(label: "main")
        log[metadataKey: "component"] = "main"
        for w in warnings { log.warning("config: \(w)") }
        let limit = Socket.raiseOpenFileLimit()
        let loop = try EventLoop(logger: Logger(label: "reactor"))
        // Signals first, before any helper thread exists, so every thread inherits the mask.
        var agentRef: Agent?
        try loop.watchLifecycleSignals(
            onShutdown: { signo in
                guard let agent = agentRef else { loop.stop(); return }
                agent.shutdown(signal: signo) { loop.stop() }
            },
            onReload: { agentRef?.reload() })
        log.info("pipeops-agent \(AgentVersion.version) starting", metadata: ["fd_limit": "\(limit)", "pid": "\(getpid())"])
        let agent: Agent
        do {
            agent = try Agent(loop: loop, config: config, environment: environment)
        } catch {
            log.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        agentRef = agent
        agent.start()
        loop.run()
        log.info("pipeops-agent stopped")
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Inspect the configuration.",
                                                    subcommands: [PrintConfig.self])

    struct PrintConfig: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "print",
                                                        abstract: "Print the merged configuration (file, environment, flags) with secrets masked.")
        @OptionGroup var options: ConfigOptions

        func run() throws {
            let (config, warnings, _) = try options.load()
            for w in warnings { printError("warning: \(w)") }
            print(ConfigPrinter.render(config), terminator: "")
        }
    }
}

PipeOpsAgent.main()
