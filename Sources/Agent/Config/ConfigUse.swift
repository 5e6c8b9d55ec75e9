import Logging

extension LogLevel {
    /// The swift-log level for this setting.
    public var loggerLevel: Logger.Level {
        switch self {
        case .trace: return .trace
        case .debug: return .debug
        case .info: return .info
        case .warning: return .warning
        case .error: return .error
        }
    }
}

extension AgentConfig {
    /// What `run` needs beyond a valid config: the control-plane token. `config print` and
    /// `config validate` do not call this.
    public func checkReadyToRun() throws(ConfigError) {
        guard let token = pipeops.token, !token.isEmpty else {
            throw ConfigError(nil, key: "pipeops.token",
                              "is required: set PIPEOPS_TOKEN or pipeops.token in ~/.pipeops-agent.yaml")
        }
    }
}
