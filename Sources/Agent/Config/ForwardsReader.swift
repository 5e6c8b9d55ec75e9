import Reactor

/// Reads `tunnel.forwards` from the file: a list of
/// `{name, local_addr, remote_bind (default 127.0.0.1), remote_port (default 0), dial_timeout (default 10s)}`,
/// checking each item where it stands so errors carry its line.
struct ForwardsReader {
    let file: String
    var warnings: [String] = []

    init(file: String) { self.file = file }

    mutating func read(_ node: YAMLNode, origin: ConfigOrigin) throws(ConfigError) -> [TunnelForward] {
        guard case .sequence(let items) = node.value else {
            throw ConfigError(origin, key: "tunnel.forwards",
                              "expected a list of forwards (- name: ..., local_addr: ...), got \(node.kindDescription)")
        }
        var forwards: [TunnelForward] = []
        var firstLine: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let path = "tunnel.forwards[\(index)]"
            let forward = try readForward(item, path: path)
            if let first = firstLine[forward.name] {
                throw ConfigError(.file(file, line: item.line), key: "\(path).name",
                                  "\"\(forward.name)\" is used twice (first at line \(first))")
            }
            firstLine[forward.name] = item.line
            forwards.append(forward)
        }
        return forwards
    }

    private mutating func readForward(_ item: YAMLNode, path: String) throws(ConfigError) -> TunnelForward {
        guard case .mapping(let pairs) = item.value else {
            throw ConfigError(.file(file, line: item.line), key: path,
                              "expected a mapping with name, local_addr and remote_port, got \(item.kindDescription)")
        }
        var name: String?
        var localAddr: String?
        var remoteBind = "127.0.0.1"
        var remotePort = 0
        var dialTimeout = TunnelForward.defaultDialTimeout
        for pair in pairs {
            let key = "\(path).\(pair.key)"
            let origin = ConfigOrigin.file(file, line: pair.keyLine)
            switch pair.key {
            case "name":
                name = try text(pair.value, key: key, origin: origin, expectation: "a non-empty name")
            case "local_addr":
                let text = try text(pair.value, key: key, origin: origin, expectation: "host:port")
                guard Self.isHostPort(text) else {
                    throw ConfigError(origin, key: key, "expected host:port with a port 1-65535, got \"\(text)\"")
                }
                localAddr = text
            case "remote_bind":
                remoteBind = try text(pair.value, key: key, origin: origin, expectation: "an address to bind")
            case "remote_port":
                let text = try text(pair.value, key: key, origin: origin, expectation: "a port number 0-65535")
                guard let port = Int(text), (0...65535).contains(port) else {
                    throw ConfigError(origin, key: key, "expected a port number 0-65535 (0 = allocated), got \"\(text)\"")
                }
                remotePort = port
            case "dial_timeout":
                let text = try text(pair.value, key: key, origin: origin, expectation: "a duration like \"5s\"")
                guard let value = DurationText.parse(text), value > .zero else {
                    throw ConfigError(origin, key: key, "expected a duration above zero like \"5s\", got \"\(text)\"")
                }
                dialTimeout = value
            default:
                warnings.append("\(file):\(pair.keyLine): unknown key \(key) (ignored)")
            }
        }
        guard let name else {
            throw ConfigError(.file(file, line: item.line), key: path, "missing \"name\"")
        }
        guard let localAddr else {
            throw ConfigError(.file(file, line: item.line), key: path, "missing \"local_addr\" (host:port)")
        }
        return TunnelForward(name: name, localAddr: localAddr, remoteBind: remoteBind, remotePort: remotePort, dialTimeout: dialTimeout)
    }

    private func text(_ node: YAMLNode, key: String, origin: ConfigOrigin,
                      expectation: String) throws(ConfigError) -> String {
        guard let text = node.scalarText, !node.isNull, !text.isEmpty else {
            throw ConfigError(origin, key: key, "expected \(expectation), got \(node.isNull ? "nothing" : node.kindDescription)")
        }
        return text
    }

    /// `host:port` or `[v6]:port` with a non-empty host and a port in 1-65535.
    static func isHostPort(_ text: String) -> Bool {
        guard let (host, port) = try? SocketAddress.splitHostPort(text) else { return false }
        return !host.isEmpty && (1...65535).contains(port)
    }
}
