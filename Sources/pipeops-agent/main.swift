import Agent
import Glibc
import Logging
import Reactor

func printError(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}

func printOut(_ text: String) {
    _ = text.withCString { Glibc.write(1, $0, strlen($0)) }
}

/// Loads file, environment and flags; on error prints it and exits 2.
func loadConfig(_ options: CommandLineOptions) -> (AgentConfig, [String], [String: String]) {
    let environment = processEnvironment()
    var overrides: [String: String] = [:]
    if let logLevel = options.logLevel { overrides["logging.level"] = logLevel }
    if let port = options.port { overrides["agent.port"] = String(port) }
    if let apiURL = options.apiURL { overrides["pipeops.api_url"] = apiURL }
    for s in options.settings {
        guard let eq = s.firstIndex(of: "=") else { continue }   // the parser checked
        overrides[String(s[..<eq])] = String(s[s.index(after: eq)...])
    }
    do {
        let (config, warnings) = try ConfigLoader.load(path: options.config, environment: environment, overrides: overrides)
        return (config, warnings, environment)
    } catch {
        printError("pipeops-agent: \(error)")
        exit(2)
    }
}

/// The event loop on the backend `setting` asks for (LoopBackendChoice); nil after logging why not.
func makeLoop(_ setting: ReactorBackendSetting, debugLogging: Bool, environment: [String: String], log: Logger) -> EventLoop? {
    do {
        let (loop, note) = try LoopBackendChoice.makeLoop(setting, debugLogging: debugLogging, environment: environment) {
            backend throws(SocketError) in try EventLoop(backend: backend, logger: Logger(label: "reactor"))
        }
        if let note { log.info("\(note)") }
        return loop
    } catch {
        log.critical("cannot start: \(error)")
        return nil
    }
}

func runAgent(_ options: CommandLineOptions) -> Int32 {
    let (config, warnings, environment) = loadConfig(options)
    if !config.pipeops.apiURL.isEmpty {
        do { try config.checkReadyToRun() } catch {
            printError("pipeops-agent: \(error)")
            return 2
        }
    }
    let format: LineLogHandler.Format
    if let f = options.logFormat, let parsed = LineLogHandler.Format(rawValue: f) {
        format = parsed
    } else {
        format = isatty(2) != 0 ? .console : (config.logging.format == .console ? .console : .json)
    }
    // The live log streams (/ws `logs`, /api/realtime/logs) read the lines through this tap.
    let logTap = LogTap()
    LineLogHandler.bootstrap(level: config.logging.level.loggerLevel, format: format, tap: logTap)
    var log = Logger(label: "main")
    log[metadataKey: "component"] = "main"
    for w in warnings { log.warning("config: \(w)") }
    let limit = Socket.raiseOpenFileLimit()
    let debugLogging = config.logging.level == .debug || config.logging.level == .trace
    guard let loop = makeLoop(config.reactor.backend, debugLogging: debugLogging, environment: environment, log: log) else { return 1 }
    // Signals first, before any helper thread exists, so every thread inherits the mask.
    var agentRef: Agent?
    do {
        try loop.watchLifecycleSignals(
            onShutdown: { signo in
                guard let agent = agentRef else { loop.stop(); return }
                agent.shutdown(signal: signo) { loop.stop() }
            },
            onReload: { agentRef?.reload() })
    } catch {
        log.critical("cannot watch signals: \(error)")
        return 1
    }
    log.info("pipeops-agent \(AgentVersion.version) starting", metadata: ["fd_limit": "\(limit)", "pid": "\(getpid())", "loop": "\(loop.backend)"])
    let agent: Agent
    do {
        agent = try Agent(loop: loop, config: config, environment: environment, logTap: logTap)
    } catch {
        log.critical("cannot start: \(error)")
        return 1
    }
    agentRef = agent
    agent.start()
    loop.run()
    log.info("pipeops-agent stopped")
    return 0
}

/// `pipeops-agent tunnel-server`: a chisel-v3 server on its own loop until SIGTERM/SIGINT.
func runTunnelServer(_ arguments: [String]) -> Int32 {
    let options: TunnelServerOptions
    do {
        guard let parsed = try TunnelServerOptions.parse(arguments, environment: processEnvironment()) else {
            printOut(TunnelServerOptions.usage + "\n")
            return 0
        }
        options = parsed
    } catch {
        printError("Error: \(error)\n  See 'pipeops-agent tunnel-server --help'.")
        return 64
    }
    let format: LineLogHandler.Format = isatty(2) != 0 ? .console : .json
    LineLogHandler.bootstrap(level: options.verbose ? .debug : .info, format: format)
    var log = Logger(label: "tunnel-server")
    log[metadataKey: "component"] = "server"
    _ = Socket.raiseOpenFileLimit()
    let environment = processEnvironment()
    let backendName = environment["PIPEOPS_REACTOR_BACKEND"].flatMap { $0.isEmpty ? nil : $0 } ?? "auto"
    guard let setting = ReactorBackendSetting(rawValue: backendName) else {
        printError("Error: PIPEOPS_REACTOR_BACKEND=\(backendName): expected one of "
                   + ReactorBackendSetting.allCases.map(\.rawValue).joined(separator: ", "))
        return 64
    }
    guard let loop = makeLoop(setting, debugLogging: options.verbose, environment: environment, log: log) else { return 1 }
    var serverRef: TunnelServer?
    do {
        try loop.watchLifecycleSignals(onShutdown: { _ in serverRef?.close(); loop.stop() }, onReload: {})
    } catch {
        log.critical("cannot watch signals: \(error)")
        return 1
    }
    do { serverRef = try TunnelServer(loop: loop, options: options, logger: log) } catch {
        log.critical("cannot start: \(error)")
        return 1
    }
    loop.run()
    return 0
}

let command: Command
do {
    command = try CommandLineParser.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    printError("Error: \(error)\nUsage: pipeops-agent [run|config print] [<options>]\n  See 'pipeops-agent --help'.")
    exit(64)
}
switch command {
case .version:
    printOut(AgentVersion.full + "\n")
case .help(let text):
    printOut(text)
case .printConfig(let options):
    let (config, warnings, _) = loadConfig(options)
    for w in warnings { printError("warning: \(w)") }
    printOut(ConfigPrinter.render(config))
case .run(let options):
    exit(runAgent(options))
case .tunnelServer(let arguments):
    exit(runTunnelServer(arguments))
}
