/// Builds the agent's configuration. Precedence, highest first:
/// command-line overrides > environment variables > the config file > defaults.
///
/// * File: `path`, or `~/.pipeops-agent.yaml` when that exists. A given path that does not
///   exist is an error. At most 1 MiB of YAML.
/// * Environment: see `environmentKeys`. Empty variables count as unset. The file's values may
///   name variables as `${NAME}` (EnvironmentExpansion).
/// * Forwards: the file's, else DefaultForwards' (which differ in a pod).
/// * Overrides: dotted key paths to text, e.g. `["agent.port": "9090", "logging.level": "debug"]`;
///   `agent.labels.NAME` sets one label. Unknown paths are errors (they are typed by a person).
/// * Unknown keys in the file are warnings; wrong types and invalid values are errors that name
///   the origin and key, e.g. `~/.pipeops-agent.yaml:14: tunnel.poll_interval: expected a
///   duration above zero like "5s", got "soon"`.
public enum ConfigLoader {
    public static let defaultFileName = ".pipeops-agent.yaml"

    /// Environment variable -> key path.
    public static let environmentKeys: [(variable: String, key: String)] = [
        ("PIPEOPS_API_URL", "pipeops.api_url"),
        ("PIPEOPS_TOKEN", "pipeops.token"),
        ("PIPEOPS_CLUSTER_NAME", "agent.cluster_name"),
        ("PIPEOPS_AGENT_ID", "agent.id"),
        ("PIPEOPS_LOG_LEVEL", "logging.level"),
        ("PIPEOPS_PORT", "agent.port"),
        ("PIPEOPS_ENABLE_WEBSOCKET", "server.enable_websocket"),
        ("PIPEOPS_ENABLE_SSE", "server.enable_sse"),
        ("PIPEOPS_AGENT_API_TOKEN", "server.api_token"),
        ("PIPEOPS_STATE_PATH", "state.path"),
        ("PIPEOPS_REACTOR_BACKEND", "reactor.backend"),
        ("PIPEOPS_STATE_BACKEND", "state.backend"),
    ]

    public static func load(path: String?, environment: [String: String],
                            overrides: [String: String]) throws(ConfigError) -> (AgentConfig, warnings: [String]) {
        let home = environment["HOME"]
        var root: YAMLNode?
        var fileName = ""
        if let (filePath, shown) = try chooseFile(path, home: home) {
            fileName = shown
            let bytes: [UInt8]
            do {
                bytes = try SmallFile.read(filePath, limit: YAMLReader.maxBytes)
            } catch {
                switch error {
                case .notFound: throw ConfigError(nil, "config file \(shown) does not exist")
                case .tooLarge(let limit): throw ConfigError(nil, "\(shown): file is over the \(limit >> 20) MiB limit")
                case .system(let text): throw ConfigError(nil, "cannot read config file \(shown): \(text)")
                }
            }
            root = try parseYAML(bytes, file: shown)
        }
        return try merge(file: root, fileName: fileName, environment: environment, overrides: overrides)
    }

    /// The same merge for YAML text that is already in memory (tests, other sources).
    public static func load(yaml text: String, fileName: String, environment: [String: String],
                            overrides: [String: String]) throws(ConfigError) -> (AgentConfig, warnings: [String]) {
        let root = try parseYAML(Array(text.utf8), file: fileName)
        return try merge(file: root, fileName: fileName, environment: environment, overrides: overrides)
    }

    static func merge(file root: YAMLNode?, fileName: String, environment: [String: String],
                      overrides: [String: String]) throws(ConfigError) -> (AgentConfig, warnings: [String]) {
        var builder = ConfigBuilder(defaults: AgentConfig.defaults(environment: environment))
        let expanded = try root.map { node throws(ConfigError) in
            try EnvironmentExpansion.expand(node, environment: environment, file: fileName)
        }
        try builder.apply(file: expanded, name: fileName)

        for (variable, key) in environmentKeys {
            guard let value = environment[variable], !value.isEmpty else { continue }
            // Kubernetes injects <SERVICE>_PORT=tcp://10.0.0.1:8080 for a Service named
            // "pipeops"; that is not our port setting.
            if variable == "PIPEOPS_PORT", value.contains("://") {
                builder.warnings.append("$PIPEOPS_PORT: ignoring \"\(value)\" (a Kubernetes service link, not a port)")
                continue
            }
            try builder.apply(path: key, text: value, origin: .environment(variable))
        }
        for key in overrides.keys.sorted() {
            try builder.apply(path: key, text: overrides[key] ?? "", origin: .commandLine)
        }

        if !builder.forwardsGiven {
            let (forwards, warnings) = DefaultForwards.resolve(agentPort: builder.config.agent.port,
                                                               inCluster: builder.config.kubernetes.inCluster,
                                                               environment: environment)
            builder.config.tunnel.forwards = forwards
            builder.warnings += warnings
        }
        try ConfigValidator.expandHome(&builder.config, home: environment["HOME"], origins: builder.origins)
        let warnings = try ConfigValidator.validate(builder.config, origins: builder.origins)
        return (builder.config, builder.warnings + warnings)
    }

    /// The file to read and the name to show for it, or nil when there is none.
    static func chooseFile(_ path: String?, home: String?) throws(ConfigError) -> (path: String, shown: String)? {
        if let path, !path.isEmpty {
            var full = path
            if path == "~" || path.hasPrefix("~/") {
                guard let home, !home.isEmpty else {
                    throw ConfigError(nil, "cannot expand \"~\" in config path \(path): HOME is not set")
                }
                full = home + path.dropFirst()
            }
            return (full, displayName(full, home: home))
        }
        guard let home, !home.isEmpty else { return nil }
        let full = (home.hasSuffix("/") ? home : home + "/") + defaultFileName
        return SmallFile.exists(full) ? (full, "~/" + defaultFileName) : nil
    }

    /// `/home/me/x.yaml` is shown as `~/x.yaml`.
    static func displayName(_ path: String, home: String?) -> String {
        guard let home, !home.isEmpty, home != "/" else { return path }
        let base = home.hasSuffix("/") ? home : home + "/"
        return path.hasPrefix(base) ? "~/" + path.dropFirst(base.count) : path
    }

    private static func parseYAML(_ bytes: [UInt8], file: String) throws(ConfigError) -> YAMLNode? {
        do {
            return try YAMLReader.parse(bytes, file: file)
        } catch {
            if let line = error.line { throw ConfigError(.file(file, line: line), error.message) }
            throw ConfigError(nil, error.description)
        }
    }
}
