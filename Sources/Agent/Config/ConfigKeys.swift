import Reactor

/// One configurable key, by its dotted YAML path. The registry (`ConfigKeys.all`) is the single
/// list of keys: the file reader, the environment and command-line overrides, and `config print`
/// (which follows its order) all go through it.
struct ConfigKey {
    enum Kind {
        case scalar(ScalarKey)
        /// `agent.labels`: a mapping of text to text.
        case labels
        /// `tunnel.forwards`: a list of forward mappings (file only).
        case forwards
        /// `kubernetes.watch_namespaces`: a list of names (a YAML list, or `a,b` as text).
        case namespaces
    }

    let path: String
    let kind: Kind
}

/// A key holding one scalar value, parsed from text.
struct ScalarKey {
    /// What a valid value looks like, for `expected <this>, got ...`.
    let expectation: String
    /// Printed as `***` when set.
    let secret: Bool
    /// Parses `text` into the config; returns what is wrong with it, or nil when it was taken.
    let set: (inout AgentConfig, String) -> String?
    /// Resets an optional key to nil (YAML null, or empty text); nil for required keys.
    let clear: ((inout AgentConfig) -> Void)?
    let render: (AgentConfig) -> RenderedScalar
}

/// A scalar as `config print` writes it.
enum RenderedScalar: Equatable {
    case null
    case text(String)
    case number(Int)
    case bool(Bool)
    case duration(TimeAmount)
}

enum ConfigKeys {
    /// Every key, in `config print` order; sections are contiguous.
    static var all: [ConfigKey] {
        [
            string("agent.id", \.agent.id),
            string("agent.name", \.agent.name),
            string("agent.cluster_name", \.agent.clusterName),
            string("agent.version", \.agent.version),
            // 0: any free port (tests); the log says which one was bound.
            int("agent.port", \.agent.port, 0...65535, "a port number"),
            string("agent.bind_address", \.agent.bindAddress, expectation: "a numeric IPv4 or IPv6 address, like 0.0.0.0 or 127.0.0.1",
                   check: { (try? SocketAddress(ip: $0, port: 0)) != nil }),
            ConfigKey(path: "agent.labels", kind: .labels),
            duration("agent.heartbeat_interval", \.agent.heartbeatInterval, allowZero: false),

            // Empty: standalone, no control plane (the tunnel then opens at start, e.g. in SSH mode).
            string("pipeops.api_url", \.pipeops.apiURL, expectation: "an http:// or https:// URL", allowEmpty: true, check: isHTTPURL),
            string("pipeops.token", \.pipeops.token, secret: true),
            string("pipeops.tls.ca_file", \.pipeops.tls.caFile),
            bool("pipeops.tls.insecure_skip_verify", \.pipeops.tls.insecureSkipVerify),
            string("pipeops.tls.cert_file", \.pipeops.tls.certFile),
            string("pipeops.tls.key_file", \.pipeops.tls.keyFile),
            duration("pipeops.timeouts.connect", \.pipeops.timeouts.connect, allowZero: false),
            duration("pipeops.timeouts.register", \.pipeops.timeouts.register, allowZero: false),
            duration("pipeops.timeouts.heartbeat", \.pipeops.timeouts.heartbeat, allowZero: false),
            duration("pipeops.timeouts.poll", \.pipeops.timeouts.poll, allowZero: false),

            bool("server.enable_websocket", \.server.enableWebSocket),
            bool("server.enable_sse", \.server.enableSSE),
            bool("server.enable_dashboard", \.server.enableDashboard),
            bool("server.cors_enabled", \.server.corsEnabled),
            string("server.api_token", \.server.apiToken, secret: true),
            bool("server.metrics_auth", \.server.metricsAuth),
            int("server.rate_limit", \.server.rateLimit, 0...1_000_000, "requests per second (0 = no limit)"),

            int("realtime.websocket_port", \.realtime.websocketPort, 1...65535, "a port number"),
            duration("realtime.sse_heartbeat", \.realtime.sseHeartbeat, allowZero: false),
            duration("realtime.connection_timeout", \.realtime.connectionTimeout, allowZero: false),
            int("realtime.max_connections", \.realtime.maxConnections, 1...100_000, "a connection count"),

            // null (the default): automatic, in cluster when the service-account token exists.
            optionalBool("kubernetes.in_cluster", \.kubernetes.inCluster),
            string("kubernetes.namespace", \.kubernetes.namespace),
            string("kubernetes.kubeconfig", \.kubernetes.kubeconfig),
            string("kubernetes.api_server", \.kubernetes.apiServer, expectation: "an http:// or https:// URL", check: isHTTPURL),
            string("kubernetes.token_file", \.kubernetes.tokenFile),
            string("kubernetes.ca_file", \.kubernetes.caFile),
            ConfigKey(path: "kubernetes.watch_namespaces", kind: .namespaces),

            choice("logging.level", \.logging.level),
            choice("logging.format", \.logging.format),

            bool("features.health_monitoring", \.features.healthMonitoring),
            bool("features.runtime_metrics", \.features.runtimeMetrics),
            bool("features.feature_detection", \.features.featureDetection),
            bool("features.connectivity_testing", \.features.connectivityTesting),

            choice("reactor.backend", \.reactor.backend),

            bool("tunnel.enabled", \.tunnel.enabled),
            choice("tunnel.mode", \.tunnel.mode),
            duration("tunnel.poll_interval", \.tunnel.pollInterval, allowZero: false),
            duration("tunnel.inactivity_timeout", \.tunnel.inactivityTimeout, allowZero: true),
            ConfigKey(path: "tunnel.forwards", kind: .forwards),
            int("tunnel.max_channels", \.tunnel.maxChannels, 1...1_000_000, "a channel count"),
            int("tunnel.max_pending_dials", \.tunnel.maxPendingDials, 1...100_000, "a dial count"),
            string("tunnel.ssh.server", \.tunnel.ssh.server),
            string("tunnel.ssh.user", \.tunnel.ssh.user),
            string("tunnel.ssh.password", \.tunnel.ssh.password, secret: true),
            string("tunnel.ssh.identity_file", \.tunnel.ssh.identityFile),
            string("tunnel.ssh.host_key_fingerprint", \.tunnel.ssh.hostKeyFingerprint),

            // null (the default): automatic, `secret` in a pod (in-cluster Kubernetes client), else `file`.
            optionalChoice("state.backend", \.state.backend),
            string("state.path", \.state.path),
        ]
    }

    // MARK: key constructors

    /// A required text key: empty text is refused, YAML null keeps the default.
    static func string(_ path: String, _ kp: WritableKeyPath<AgentConfig, String>,
                       expectation: String = "a non-empty string", allowEmpty: Bool = false,
                       check: @escaping (String) -> Bool = { _ in true }) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: expectation, secret: false,
            set: { config, text in
                guard (allowEmpty && text.isEmpty) || (!text.isEmpty && check(text)) else {
                    return "expected \(expectation), got \"\(URLUserinfo.redacted(text))\""
                }
                config[keyPath: kp] = text
                return nil
            },
            clear: nil,
            render: { .text($0[keyPath: kp]) }))
    }

    /// An optional text key: null or empty text means unset.
    static func string(_ path: String, _ kp: WritableKeyPath<AgentConfig, String?>, secret: Bool = false,
                       expectation: String = "a string",
                       check: @escaping (String) -> Bool = { _ in true }) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: expectation, secret: secret,
            set: { config, text in
                if text.isEmpty {
                    config[keyPath: kp] = nil
                    return nil
                }
                guard check(text) else { return "expected \(expectation), got \"\(URLUserinfo.redacted(text))\"" }
                config[keyPath: kp] = text
                return nil
            },
            clear: { $0[keyPath: kp] = nil },
            render: { config in config[keyPath: kp].map { .text($0) } ?? .null }))
    }

    static func bool(_ path: String, _ kp: WritableKeyPath<AgentConfig, Bool>) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: "true or false",
            secret: false,
            set: { config, text in
                guard let value = parseBool(text) else { return "expected true or false, got \"\(text)\"" }
                config[keyPath: kp] = value
                return nil
            },
            clear: nil,
            render: { .bool($0[keyPath: kp]) }))
    }

    /// A boolean that may be left unset (null or empty text): "decide for me".
    static func optionalBool(_ path: String, _ kp: WritableKeyPath<AgentConfig, Bool?>) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: "true, false or null",
            secret: false,
            set: { config, text in
                if text.isEmpty { config[keyPath: kp] = nil; return nil }
                guard let value = parseBool(text) else { return "expected true, false or null, got \"\(text)\"" }
                config[keyPath: kp] = value
                return nil
            },
            clear: { $0[keyPath: kp] = nil },
            render: { config in config[keyPath: kp].map { .bool($0) } ?? .null }))
    }

    static func int(_ path: String, _ kp: WritableKeyPath<AgentConfig, Int>, _ range: ClosedRange<Int>,
                    _ what: String) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: "\(what) \(range.lowerBound)-\(range.upperBound)",
            secret: false,
            set: { config, text in
                guard let value = Int(text.trimmingSpaces), range.contains(value) else {
                    return "expected \(what) \(range.lowerBound)-\(range.upperBound), got \"\(text)\""
                }
                config[keyPath: kp] = value
                return nil
            },
            clear: nil,
            render: { .number($0[keyPath: kp]) }))
    }

    static func int(_ path: String, _ kp: WritableKeyPath<AgentConfig, Int?>, _ range: ClosedRange<Int>,
                    _ what: String) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: "\(what) \(range.lowerBound)-\(range.upperBound)",
            secret: false,
            set: { config, text in
                guard let value = Int(text.trimmingSpaces), range.contains(value) else {
                    return "expected \(what) \(range.lowerBound)-\(range.upperBound), got \"\(text)\""
                }
                config[keyPath: kp] = value
                return nil
            },
            clear: { $0[keyPath: kp] = nil },
            render: { config in config[keyPath: kp].map { .number($0) } ?? .null }))
    }

    static func duration(_ path: String, _ kp: WritableKeyPath<AgentConfig, TimeAmount>,
                         allowZero: Bool) -> ConfigKey {
        scalar(path, ScalarKey(
            expectation: "a duration like \"5s\"",
            secret: false,
            set: { config, text in
                guard let value = DurationText.parse(text) else { return "expected a duration like \"5s\", got \"\(text)\"" }
                guard allowZero || value > .zero else { return "must be above zero, got \"\(text)\"" }
                config[keyPath: kp] = value
                return nil
            },
            clear: nil,
            render: { .duration($0[keyPath: kp]) }))
    }

    /// One of an enum's raw values, compared case-insensitively.
    static func choice<E: RawRepresentable & CaseIterable>(_ path: String, _ kp: WritableKeyPath<AgentConfig, E>)
        -> ConfigKey where E.RawValue == String {
        scalar(path, ScalarKey(
            expectation: "one of " + E.allCases.map(\.rawValue).joined(separator: ", "),
            secret: false,
            set: { config, text in
                guard let value = E(rawValue: text.trimmingSpaces.lowercased()) else {
                    return "expected one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\""
                }
                config[keyPath: kp] = value
                return nil
            },
            clear: nil,
            render: { .text($0[keyPath: kp].rawValue) }))
    }

    /// Like `choice`, plus null (or empty text): unset, decided at start.
    static func optionalChoice<E: RawRepresentable & CaseIterable>(_ path: String, _ kp: WritableKeyPath<AgentConfig, E?>)
        -> ConfigKey where E.RawValue == String {
        let names = E.allCases.map(\.rawValue).joined(separator: ", ")
        return scalar(path, ScalarKey(
            expectation: "one of \(names) or null",
            secret: false,
            set: { config, text in
                if text.isEmpty { config[keyPath: kp] = nil; return nil }
                guard let value = E(rawValue: text.trimmingSpaces.lowercased()) else {
                    return "expected one of \(names) or null, got \"\(text)\""
                }
                config[keyPath: kp] = value
                return nil
            },
            clear: { $0[keyPath: kp] = nil },
            render: { config in config[keyPath: kp].map { .text($0.rawValue) } ?? .null }))
    }

    private static func scalar(_ path: String, _ key: ScalarKey) -> ConfigKey {
        ConfigKey(path: path, kind: .scalar(key))
    }

    // MARK: value checks

    /// YAML 1.1 and environment spellings: true/false, yes/no, on/off, 1/0, any case.
    static func parseBool(_ text: String) -> Bool? {
        switch text.trimmingSpaces.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    /// Namespace names from `a, b` text; nil with the offending name when one is not a valid
    /// Kubernetes name (RFC 1123 label: lower-case letters, digits and `-`, at most 63).
    static func parseNamespaces(_ items: [String]) -> (names: [String], bad: String?) {
        var names: [String] = []
        for raw in items {
            let name = raw.trimmingSpaces
            if name.isEmpty { continue }
            let valid = name.utf8.count <= 63 && name.utf8.first != UInt8(ascii: "-") && name.utf8.last != UInt8(ascii: "-")
                && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            guard valid else { return (names, name) }
            if !names.contains(name) { names.append(name) }
        }
        return (names, nil)
    }

    /// `http://host...` or `https://host...` that the HTTP client can use (a host, a valid port),
    /// so a URL the agent accepts at start is one its requests can reach.
    static func isHTTPURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), !text.contains(" ") else { return false }
        return (try? HTTPClientRequest.parseURL(text)) != nil
    }
}
