import Reactor

/// Applies the layers of configuration on top of the defaults, remembering where each key was
/// last set (for error messages) and collecting warnings.
struct ConfigBuilder {
    var config: AgentConfig
    /// Key path -> the layer that set it last.
    var origins: [String: ConfigOrigin] = [:]
    var warnings: [String] = []
    /// False until the file names `tunnel.forwards`; then the defaults are not added.
    var forwardsGiven = false

    private let keys: [String: ConfigKey]
    /// Paths of mappings that hold keys (`agent`, `pipeops`, `pipeops.tls`, ...).
    private let sections: Set<String>

    init(defaults: AgentConfig) {
        config = defaults
        var keys: [String: ConfigKey] = [:]
        var sections: Set<String> = []
        for key in ConfigKeys.all {
            keys[key.path] = key
            var parts = key.path.split(separator: ".").dropLast()
            while !parts.isEmpty {
                sections.insert(parts.joined(separator: "."))
                parts = parts.dropLast()
            }
        }
        self.keys = keys
        self.sections = sections
    }

    // MARK: the file

    /// Applies a parsed file. `file` is its name as shown to the user.
    mutating func apply(file root: YAMLNode?, name file: String) throws(ConfigError) {
        guard let root, !root.isNull else { return }
        guard case .mapping = root.value else {
            throw ConfigError(.file(file, line: root.line),
                              "expected a mapping of sections (agent:, pipeops:, ...), got \(root.kindDescription)")
        }
        try walk(root, prefix: "", file: file)
    }

    private mutating func walk(_ node: YAMLNode, prefix: String, file: String) throws(ConfigError) {
        guard case .mapping(let pairs) = node.value else { return }
        for pair in pairs {
            let path = prefix.isEmpty ? pair.key : "\(prefix).\(pair.key)"
            let origin = ConfigOrigin.file(file, line: pair.keyLine)
            if let key = keys[path] {
                switch key.kind {
                case .scalar(let scalar): try apply(scalar, path: path, node: pair.value, origin: origin)
                case .labels: try applyLabels(pair.value, origin: origin)
                case .forwards: try applyForwards(pair.value, file: file, origin: origin)
                case .namespaces: try applyNamespaces(pair.value, origin: origin)
                }
            } else if sections.contains(path) {
                if pair.value.isNull { continue } // a section with everything commented out
                guard case .mapping = pair.value.value else {
                    throw ConfigError(origin, key: path, "expected a mapping, got \(pair.value.kindDescription)")
                }
                try walk(pair.value, prefix: path, file: file)
            } else {
                warnings.append("\(file):\(pair.keyLine): unknown key \(path) (ignored)")
            }
        }
    }

    private mutating func apply(_ key: ScalarKey, path: String, node: YAMLNode,
                                origin: ConfigOrigin) throws(ConfigError) {
        if node.isNull {
            // null clears an optional key and leaves a required one at its default.
            if let clear = key.clear {
                clear(&config)
                origins[path] = origin
            }
            return
        }
        guard let text = node.scalarText else {
            throw ConfigError(origin, key: path, "expected \(key.expectation), got \(node.kindDescription)")
        }
        try apply(key, path: path, text: text, origin: origin)
    }

    private mutating func apply(_ key: ScalarKey, path: String, text: String,
                                origin: ConfigOrigin) throws(ConfigError) {
        if let problem = key.set(&config, text) {
            throw ConfigError(origin, key: path, problem)
        }
        origins[path] = origin
    }

    private mutating func applyLabels(_ node: YAMLNode, origin: ConfigOrigin) throws(ConfigError) {
        if node.isNull { return }
        guard case .mapping(let pairs) = node.value else {
            throw ConfigError(origin, key: "agent.labels", "expected a mapping of names to values, got \(node.kindDescription)")
        }
        var labels: [String: String] = [:]
        for pair in pairs {
            guard let value = pair.value.isNull ? "" : pair.value.scalarText else {
                throw ConfigError(.file(fileName(origin), line: pair.keyLine), key: "agent.labels.\(pair.key)",
                                  "expected a text value, got \(pair.value.kindDescription)")
            }
            guard !pair.key.isEmpty else {
                throw ConfigError(.file(fileName(origin), line: pair.keyLine), key: "agent.labels", "a label name is empty")
            }
            labels[pair.key] = value
        }
        config.agent.labels = labels
        origins["agent.labels"] = origin
    }

    private mutating func applyForwards(_ node: YAMLNode, file: String, origin: ConfigOrigin) throws(ConfigError) {
        if node.isNull { return }
        var reader = ForwardsReader(file: file)
        config.tunnel.forwards = try reader.read(node, origin: origin)
        warnings += reader.warnings
        forwardsGiven = true
        origins["tunnel.forwards"] = origin
    }

    private mutating func applyNamespaces(_ node: YAMLNode, origin: ConfigOrigin) throws(ConfigError) {
        let path = "kubernetes.watch_namespaces"
        var items: [String] = []
        switch node.value {
        case .scalar(let text, _):
            items = node.isNull ? [] : text.split(separator: ",").map(String.init)
        case .sequence(let nodes):
            for n in nodes {
                guard let text = n.scalarText else {
                    throw ConfigError(.file(fileName(origin), line: n.line), key: path, "expected a namespace name, got \(n.kindDescription)")
                }
                items.append(text)
            }
        case .mapping:
            throw ConfigError(origin, key: path, "expected a list of namespace names, got a mapping")
        }
        try setNamespaces(items, origin: origin)
    }

    private mutating func setNamespaces(_ items: [String], origin: ConfigOrigin) throws(ConfigError) {
        let (names, bad) = ConfigKeys.parseNamespaces(items)
        if let bad {
            throw ConfigError(origin, key: "kubernetes.watch_namespaces",
                              "\"\(bad)\" is not a namespace name (lower-case letters, digits and '-', at most 63)")
        }
        config.kubernetes.watchNamespaces = names
        origins["kubernetes.watch_namespaces"] = origin
    }

    private func fileName(_ origin: ConfigOrigin) -> String {
        if case .file(let name, _) = origin { return name }
        return "\(origin)"
    }

    // MARK: environment and command line

    /// Sets `path` from text (an environment variable or a command-line override).
    mutating func apply(path: String, text: String, origin: ConfigOrigin) throws(ConfigError) {
        if let key = keys[path] {
            switch key.kind {
            case .scalar(let scalar):
                if text.isEmpty, let clear = scalar.clear {
                    clear(&config)
                    origins[path] = origin
                } else {
                    try apply(scalar, path: path, text: text, origin: origin)
                }
            case .labels:
                // `name=value,name2=value2` replaces all labels.
                var labels: [String: String] = [:]
                for item in text.split(separator: ",", omittingEmptySubsequences: true) {
                    let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let name = String(parts[0]).trimmingSpaces
                    guard parts.count == 2, !name.isEmpty else {
                        throw ConfigError(origin, key: path, "expected name=value[,name=value...], got \"\(text)\"")
                    }
                    labels[name] = String(parts[1]).trimmingSpaces
                }
                config.agent.labels = labels
                origins[path] = origin
            case .forwards:
                throw ConfigError(origin, key: path, "can only be set in the config file")
            case .namespaces:
                try setNamespaces(text.split(separator: ",").map(String.init), origin: origin)
            }
        } else if path.hasPrefix("agent.labels."), path.count > "agent.labels.".count {
            config.agent.labels[String(path.dropFirst("agent.labels.".count))] = text
            origins["agent.labels"] = origin
        } else {
            throw ConfigError(origin, "unknown setting \"\(path)\"")
        }
    }
}
