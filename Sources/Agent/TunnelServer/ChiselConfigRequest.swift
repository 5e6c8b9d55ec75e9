import Reactor

/// One remote of a client's `config` request, all nine fields (chisel-v3-protocol.md §6.1).
struct ChiselServerRemote: Equatable {
    var localHost = "", localPort = "", localProto = ""
    var remoteHost = "", remotePort = "", remoteProto = ""
    var socks = false, reverse = false, stdio = false

    /// What the ACL is checked against (§10): `R:<LocalHost>:<LocalPort>` for a reverse remote.
    var aclAddress: String { reverse ? "R:\(localHost):\(localPort)" : "\(remoteHost):\(remotePort)" }

    /// The channel's extra data: what the client dials.
    var target: String { socks ? "socks" : (remoteHost.isEmpty ? "127.0.0.1" : remoteHost) + ":" + remotePort }

    /// chisel's `Remote.String()`: `R:8000=>localhost:6443`.
    var display: String {
        var local = stdio ? "stdio" : (localHost.isEmpty ? "0.0.0.0" : localHost) + ":" + localPort
        if local.hasPrefix("0.0.0.0:") { local.removeFirst("0.0.0.0:".count) }
        var remote = target
        if remote.hasPrefix("127.0.0.1:") { remote.removeFirst("127.0.0.1:".count) }
        return (reverse ? "R:" : "") + local + "=>" + remote + (remoteProto == "udp" ? "/udp" : "")
    }
}

/// The `config` request's JSON, decoded the way Go's encoding/json fills chisel's structs:
/// names matched exactly or else case-insensitively, unknown names ignored, null and missing
/// fields left empty, a wrong type an error.
struct ChiselConfigRequest: Equatable {
    var version = ""
    var remotes: [ChiselServerRemote] = []

    static func decode(_ bytes: [UInt8]) throws(TunnelServerError) -> ChiselConfigRequest {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw TunnelServerError("config is not JSON: \(error)") }
        var config = ChiselConfigRequest()
        guard case .object(let top) = json else { throw TunnelServerError("config is \(json.kindName), not an object") }
        if let v = try field(top, "Version") { config.version = try text(v, "Version") }
        if let v = try field(top, "Remotes") {
            guard case .array(let items) = v else { throw TunnelServerError("Remotes is \(v.kindName), not an array") }
            for (i, item) in items.enumerated() {
                guard case .object(let m) = item else { throw TunnelServerError("Remotes[\(i)] is \(item.kindName), not an object") }
                var r = ChiselServerRemote()
                let strings: [(String, WritableKeyPath<ChiselServerRemote, String>)] = [
                    ("LocalHost", \.localHost), ("LocalPort", \.localPort), ("LocalProto", \.localProto),
                    ("RemoteHost", \.remoteHost), ("RemotePort", \.remotePort), ("RemoteProto", \.remoteProto)]
                for (name, kp) in strings {
                    if let v = try field(m, name) { r[keyPath: kp] = try text(v, "Remotes[\(i)].\(name)") }
                }
                let flags: [(String, WritableKeyPath<ChiselServerRemote, Bool>)] = [("Socks", \.socks), ("Reverse", \.reverse), ("Stdio", \.stdio)]
                for (name, kp) in flags {
                    guard let v = try field(m, name) else { continue }
                    guard case .bool(let b) = v else { throw TunnelServerError("Remotes[\(i)].\(name) is \(v.kindName), not a boolean") }
                    r[keyPath: kp] = b
                }
                config.remotes.append(r)
            }
        }
        return config
    }

    /// The member Go would use for `name` (exact first, then any case); nil when absent or null.
    private static func field(_ members: [JSONMember], _ name: String) throws(TunnelServerError) -> JSONValue? {
        let m = members.last(where: { $0.key == name }) ?? members.last(where: { $0.key.lowercased() == name.lowercased() })
        guard let value = m?.value, value != .null else { return nil }
        return value
    }

    private static func text(_ v: JSONValue, _ name: String) throws(TunnelServerError) -> String {
        guard case .string(let s) = v else { throw TunnelServerError("\(name) is \(v.kindName), not a string") }
        return s
    }
}
