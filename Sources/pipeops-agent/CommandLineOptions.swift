/// The command line, parsed by hand: two commands and a handful of flags do not earn a
/// dependency (swift-argument-parser cost megabytes of binary and of resident memory).
///
///     pipeops-agent [run] [--config FILE] [--log-level L] [--log-format F] [--port N] [--api-url URL] [--set k=v]...
///     pipeops-agent config print [same options but --log-format]
///     pipeops-agent tunnel-server [chisel server flags] (TunnelServerOptions parses them)
///     pipeops-agent --version | --help | help [command]
enum Command: Equatable {
    case run(CommandLineOptions)
    case printConfig(CommandLineOptions)
    /// The words after `tunnel-server`, for TunnelServerOptions.
    case tunnelServer([String])
    case version
    case help(String)
}

struct CommandLineOptions: Equatable {
    var config: String?
    var logLevel: String?
    var logFormat: String?
    var port: Int?
    var apiURL: String?
    var settings: [String] = []
}

/// A usage error: printed with a hint, exit status 64 (EX_USAGE) as before.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

enum CommandLineParser {
    static func parse(_ arguments: [String]) throws(UsageError) -> Command {
        var args = arguments[...]
        var isConfigPrint = false
        if let first = args.first {
            switch first {
            case "--version": return .version
            case "-h", "--help": return .help(Help.overview)
            case "help":
                switch args.dropFirst().first {
                case nil: return .help(Help.overview)
                case "run": return .help(Help.run)
                case "config": return .help(Help.configPrint)
                case "tunnel-server": return .tunnelServer(["--help"])
                case let other?: throw UsageError(description: "unknown command '\(other)'")
                }
            case "tunnel-server": return .tunnelServer(Array(args.dropFirst()))
            case "run": args = args.dropFirst()
            case "config":
                guard args.dropFirst().first == "print" else {
                    if args.count == 1 || ["-h", "--help"].contains(args.dropFirst().first ?? "") { return .help(Help.configPrint) }
                    throw UsageError(description: "unknown config command '\(args.dropFirst().first ?? "")' (only 'config print')")
                }
                args = args.dropFirst(2)
                isConfigPrint = true
            default:
                if !first.hasPrefix("-") { throw UsageError(description: "unknown command '\(first)'") }
            }
        }
        var options = CommandLineOptions()
        while let arg = args.popFirst() {
            if arg == "-h" || arg == "--help" { return .help(isConfigPrint ? Help.configPrint : Help.run) }
            if arg == "--version" { return .version }
            // `--name value` or `--name=value`.
            let name: String
            var value: String?
            if let eq = arg.firstIndex(of: "="), arg.hasPrefix("--") {
                name = String(arg[..<eq])
                value = String(arg[arg.index(after: eq)...])
            } else {
                name = arg
            }
            func take() throws(UsageError) -> String {
                if let value { return value }
                guard let next = args.popFirst() else { throw UsageError(description: "missing value for '\(name)'") }
                return next
            }
            switch name {
            case "--config": options.config = try take()
            case "--log-level":
                let level = try take()
                guard ["trace", "debug", "info", "warning", "error"].contains(level) else {
                    throw UsageError(description: "--log-level: '\(level)' is not one of trace, debug, info, warning, error")
                }
                options.logLevel = level
            case "--log-format" where !isConfigPrint:
                let format = try take()
                guard format == "json" || format == "console" else { throw UsageError(description: "--log-format: expected json or console") }
                options.logFormat = format
            case "--port":
                let text = try take()
                guard let port = Int(text), (0...65535).contains(port) else {
                    throw UsageError(description: "--port: '\(text)' is not a port number")
                }
                options.port = port
            case "--api-url": options.apiURL = try take()
            case "--set":
                let setting = try take()
                guard setting.contains("=") else { throw UsageError(description: "--set \(setting): expected key=value") }
                options.settings.append(setting)
            default:
                throw UsageError(description: arg.hasPrefix("-") ? "unknown option '\(name)'" : "unexpected argument '\(arg)'")
            }
        }
        return isConfigPrint ? .printConfig(options) : .run(options)
    }
}

enum Help {
    static let overview = """
        OVERVIEW: The PipeOps VM agent: registers the cluster and opens the control plane's tunnel.

        USAGE: pipeops-agent [run] [<options>]
               pipeops-agent config print [<options>]
               pipeops-agent tunnel-server [<chisel server options>]

        COMMANDS:
          run (default)           Run the agent.
          config print            Print the merged configuration (file, environment, flags) with secrets masked.
          tunnel-server           Run a chisel-v3 tunnel server (see 'pipeops-agent tunnel-server --help').

        OPTIONS:
        \(commonOptions)
          --log-format <format>   Log format: json or console (default: console on a terminal, else logging.format).
          --version               Show the version.
          -h, --help              Show help information.

        """

    static let run = """
        OVERVIEW: Run the agent (the default command).

        USAGE: pipeops-agent run [<options>]

        OPTIONS:
        \(commonOptions)
          --log-format <format>   Log format: json or console (default: console on a terminal, else logging.format).
          -h, --help              Show help information.

        """

    static let configPrint = """
        OVERVIEW: Print the merged configuration (file, environment, flags) with secrets masked.

        USAGE: pipeops-agent config print [<options>]

        OPTIONS:
        \(commonOptions)
          -h, --help              Show help information.

        """

    static let commonOptions = """
          --config <file>         Configuration file (default ~/.pipeops-agent.yaml when it exists).
          --log-level <level>     Log level: trace, debug, info, warning, error (overrides logging.level).
          --port <port>           HTTP port of the agent (overrides agent.port).
          --api-url <url>         Control-plane URL (overrides pipeops.api_url).
          --set <key=value>       Any key, as key=value (e.g. --set tunnel.poll_interval=10s). Repeatable.
        """
}
