import Reactor

/// `config print`: the merged configuration as YAML, every key in registry order, secrets
/// (`pipeops.token`, `server.api_token`, `tunnel.ssh.password`) shown as `"***"` when set, and
/// so is the userinfo of any URL (`http://***@host`).
/// The output reads back through `ConfigLoader` to the same config (secrets aside).
public enum ConfigPrinter {
    public static func render(_ config: AgentConfig) -> String {
        var out = ""
        var open: [Substring] = [] // the mapping path whose children we are writing
        for key in ConfigKeys.all {
            let parts = key.path.split(separator: ".")
            let parents = Array(parts.dropLast())
            var common = 0
            while common < open.count, common < parents.count, open[common] == parents[common] { common += 1 }
            for level in common..<parents.count {
                out += indent(level) + parents[level] + ":\n"
            }
            open = parents
            let level = parents.count
            let name = String(parts[parts.count - 1])
            switch key.kind {
            case .scalar(let scalar):
                var value = scalar.render(config)
                if scalar.secret, value != .null { value = .text("***") }
                out += indent(level) + name + ": " + text(value) + "\n"
            case .labels:
                out += labels(config.agent.labels, name: name, level: level)
            case .forwards:
                out += forwards(config.tunnel.forwards, name: name, level: level)
            case .namespaces:
                out += indent(level) + name + ": [" + config.kubernetes.watchNamespaces.map(quoted).joined(separator: ", ") + "]\n"
            }
        }
        return out
    }

    private static func labels(_ labels: [String: String], name: String, level: Int) -> String {
        if labels.isEmpty { return indent(level) + name + ": {}\n" }
        var out = indent(level) + name + ":\n"
        for key in labels.keys.sorted() {
            out += indent(level + 1) + mappingKey(key) + ": " + quoted(labels[key] ?? "") + "\n"
        }
        return out
    }

    private static func forwards(_ forwards: [TunnelForward], name: String, level: Int) -> String {
        if forwards.isEmpty { return indent(level) + name + ": []\n" }
        var out = indent(level) + name + ":\n"
        for forward in forwards {
            let item = indent(level + 1)
            out += item + "- name: " + quoted(forward.name) + "\n"
            out += item + "  local_addr: " + quoted(forward.localAddr) + "\n"
            out += item + "  remote_bind: " + quoted(forward.remoteBind) + "\n"
            out += item + "  remote_port: \(forward.remotePort)\n"
            out += item + "  dial_timeout: " + quoted(DurationText.format(forward.dialTimeout)) + "\n"
        }
        return out
    }

    private static func text(_ value: RenderedScalar) -> String {
        switch value {
        case .null: return "null"
        case .text(let s): return quoted(URLUserinfo.redacted(s))
        case .number(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .duration(let d): return quoted(DurationText.format(d))
        }
    }

    private static func indent(_ level: Int) -> String { String(repeating: "  ", count: level) }

    /// A label name: plain when it is unambiguous, quoted otherwise.
    private static func mappingKey(_ key: String) -> String {
        let simple = key.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9")
                || $0 == "_" || $0 == "-" || $0 == "." || $0 == "/"
        }
        let first = key.unicodeScalars.first
        return simple && first != "-" && first != "." ? key : quoted(key)
    }

    /// A YAML double-quoted scalar. A `${` is written `$${`: values are read back through
    /// environment expansion, which would otherwise take it for a variable.
    static func quoted(_ s: String) -> String {
        var out = "\""
        var previous: Unicode.Scalar?
        for scalar in s.unicodeScalars {
            defer { previous = scalar }
            if scalar == "{" && previous == "$" { out += "${"; continue }
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                // YAML allows no C0 or C1 control characters, nor DEL, unescaped.
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
