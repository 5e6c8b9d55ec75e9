/// Where a setting came from; errors and warnings start with it.
public enum ConfigOrigin: Sendable, Equatable, CustomStringConvertible {
    case defaultValue
    /// A config file (its name as shown to the user) and a 1-based line.
    case file(String, line: Int)
    /// An environment variable.
    case environment(String)
    /// A command-line override (`overrides` of `ConfigLoader.load`).
    case commandLine

    public var description: String {
        switch self {
        case .defaultValue: return "default"
        case .file(let name, let line): return "\(name):\(line)"
        case .environment(let name): return "$\(name)"
        case .commandLine: return "command line"
        }
    }
}

/// A fatal configuration problem. `description` is the whole message, e.g.
/// `~/.pipeops-agent.yaml:14: tunnel.poll_interval: expected a duration like "5s", got "soon"`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let origin: ConfigOrigin?
    public let message: String

    public init(_ origin: ConfigOrigin?, _ message: String) {
        self.origin = origin
        self.message = message
    }

    /// A problem with one key: the message names the key path after the origin.
    public init(_ origin: ConfigOrigin?, key: String, _ message: String) {
        self.init(origin, "\(key): \(message)")
    }

    public var description: String {
        guard let origin, origin != .defaultValue else { return message }
        return "\(origin): \(message)"
    }
}

/// A YAML syntax or structure error, before any key is interpreted.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as shown to the user.
    public let file: String
    /// 1-based; nil when the problem has no position (size limit, encoding).
    public let line: Int?
    public let message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}
