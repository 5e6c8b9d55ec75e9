/// Checks that span several keys, run once all layers are merged. Single-key checks (ranges,
/// formats, forwards) happen while parsing, where the file line is at hand.
enum ConfigValidator {
    /// Throws the first problem; returns warnings for settings that work but look wrong.
    static func validate(_ config: AgentConfig, origins: [String: ConfigOrigin]) throws(ConfigError) -> [String] {
        var warnings: [String] = []
        func origin(_ key: String) -> ConfigOrigin? { origins[key] }

        let tls = config.pipeops.tls
        if (tls.certFile == nil) != (tls.keyFile == nil) {
            let given = tls.certFile == nil ? "pipeops.tls.key_file" : "pipeops.tls.cert_file"
            let missing = tls.certFile == nil ? "pipeops.tls.cert_file" : "pipeops.tls.key_file"
            throw ConfigError(origin(given), key: given, "is set but \(missing) is not; a client certificate needs both")
        }
        if tls.insecureSkipVerify {
            warnings.append("\(prefix(origin("pipeops.tls.insecure_skip_verify")))pipeops.tls.insecure_skip_verify is on: "
                + "the control plane's certificate is not checked (labs only)")
        }

        if config.tunnel.enabled && config.tunnel.mode == .ssh {
            let ssh = config.tunnel.ssh
            let modeOrigin = origin("tunnel.mode")
            if ssh.server == nil {
                throw ConfigError(modeOrigin, key: "tunnel.ssh.server", "is required when tunnel.mode is ssh")
            }
            if ssh.user == nil {
                throw ConfigError(modeOrigin, key: "tunnel.ssh.user", "is required when tunnel.mode is ssh")
            }
            if ssh.password == nil && ssh.identityFile == nil {
                throw ConfigError(modeOrigin, key: "tunnel.ssh",
                                  "needs a password or an identity_file when tunnel.mode is ssh")
            }
        }

        if let port = config.realtime.websocketPort, port != config.agent.port {
            warnings.append("\(prefix(origin("realtime.websocket_port")))realtime.websocket_port (\(port)) differs from "
                + "agent.port (\(config.agent.port)); WebSocket is served on agent.port")
        }
        return warnings
    }

    private static func prefix(_ origin: ConfigOrigin?) -> String {
        guard let origin, origin != .defaultValue else { return "" }
        return "\(origin): "
    }

    /// Expands a leading `~/` in every path-like key using HOME.
    static func expandHome(_ config: inout AgentConfig, home: String?,
                           origins: [String: ConfigOrigin]) throws(ConfigError) {
        func expand(_ value: String, key: String) throws(ConfigError) -> String {
            guard value == "~" || value.hasPrefix("~/") else { return value }
            guard let home, !home.isEmpty else {
                throw ConfigError(origins[key], key: key, "cannot expand \"~\" in \"\(value)\": HOME is not set")
            }
            let base = home.hasSuffix("/") ? String(home.dropLast()) : home
            return base + value.dropFirst()
        }
        func expand(_ value: String?, key: String) throws(ConfigError) -> String? {
            guard let value else { return nil }
            return try expand(value, key: key) as String
        }
        config.state.path = try expand(config.state.path, key: "state.path")
        config.kubernetes.kubeconfig = try expand(config.kubernetes.kubeconfig, key: "kubernetes.kubeconfig")
        config.kubernetes.tokenFile = try expand(config.kubernetes.tokenFile, key: "kubernetes.token_file")
        config.kubernetes.caFile = try expand(config.kubernetes.caFile, key: "kubernetes.ca_file")
        config.pipeops.tls.caFile = try expand(config.pipeops.tls.caFile, key: "pipeops.tls.ca_file")
        config.pipeops.tls.certFile = try expand(config.pipeops.tls.certFile, key: "pipeops.tls.cert_file")
        config.pipeops.tls.keyFile = try expand(config.pipeops.tls.keyFile, key: "pipeops.tls.key_file")
        config.tunnel.ssh.identityFile = try expand(config.tunnel.ssh.identityFile, key: "tunnel.ssh.identity_file")
    }
}
