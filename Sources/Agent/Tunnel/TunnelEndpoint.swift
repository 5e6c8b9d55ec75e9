import Reactor

/// Where the chisel server is, from `tunnel_server_addr` (control-plane-api.md §3, chisel §1.1):
/// `https://host[:port][/path]`, `http://…`, `wss://…`, `ws://…` or a bare `host[:port]`
/// (meaning https). The scheme decides TLS; default ports 443 and 80. The Host header always
/// carries the port, as chisel's Go client sends it.
public struct TunnelEndpoint: Equatable, Sendable, CustomStringConvertible {
    public var useTLS: Bool
    public var host: String
    public var port: Int
    public var path: String

    public init(useTLS: Bool, host: String, port: Int, path: String) {
        self.useTLS = useTLS
        self.host = host
        self.port = port
        self.path = path
    }

    public static func parse(_ text: String) throws(TunnelConfigError) -> TunnelEndpoint {
        var rest = Substring(text.trimmingCharacters(in: " "))
        guard !rest.isEmpty else { throw TunnelConfigError("tunnel server address is empty") }
        var tls = true
        if let schemeEnd = rest.firstRange(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "https", "wss": tls = true
            case "http", "ws": tls = false
            default: throw TunnelConfigError("tunnel server address '\(text)': unsupported scheme '\(scheme)' (use https, http, wss or ws)")
            }
            rest = rest[schemeEnd.upperBound...]
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        guard !authority.isEmpty else { throw TunnelConfigError("tunnel server address '\(text)' has no host") }
        var host = String(authority)
        var port = tls ? 443 : 80
        // host:port, [v6]:port, [v6], host
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw TunnelConfigError("tunnel server address '\(text)': missing ']'") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { port = try parsePort(after.dropFirst(), text) }
            else if !after.isEmpty { throw TunnelConfigError("tunnel server address '\(text)': junk after ']'") }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = try parsePort(authority[authority.index(after: colon)...], text)
        }
        guard !host.isEmpty else { throw TunnelConfigError("tunnel server address '\(text)' has no host") }
        return TunnelEndpoint(useTLS: tls, host: host, port: port, path: path)
    }

    private static func parsePort(_ s: Substring, _ text: String) throws(TunnelConfigError) -> Int {
        guard let p = Int(s), (1...65535).contains(p) else { throw TunnelConfigError("tunnel server address '\(text)': bad port '\(s)'") }
        return p
    }

    /// `Host:` header value: always with the port (gorilla/websocket dials an explicit port).
    public var hostHeader: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    public var description: String { "\(useTLS ? "wss" : "ws")://\(hostHeader)\(path)" }
}

public struct TunnelConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `credentials` from the poll: base64 of `user:password`, split at the first `:`.
public struct TunnelCredentials: Equatable, Sendable {
    public var user: String
    public var password: String

    public init(user: String, password: String) { self.user = user; self.password = password }

    public static func decode(base64 text: String) throws(TunnelConfigError) -> TunnelCredentials {
        guard let bytes = Base64.decode(text) else { throw TunnelConfigError("tunnel credentials are not valid base64") }
        let s = String(decoding: bytes, as: UTF8.self)
        guard let colon = s.firstIndex(of: ":") else { return TunnelCredentials(user: "", password: "") }
        return TunnelCredentials(user: String(s[..<colon]), password: String(s[s.index(after: colon)...]))
    }
}

/// One `R:` remote as chisel's Go client sends it in the `config` request (chisel §6.1, §11).
public struct ChiselRemote: Equatable, Sendable {
    public var localHost: String     // where the server listens
    public var localPort: Int
    public var remoteHost: String    // what the agent dials
    public var remotePort: Int

    public init(localHost: String, localPort: Int, remoteHost: String, remotePort: Int) {
        self.localHost = localHost
        self.localPort = localPort
        self.remoteHost = remoteHost
        self.remotePort = remotePort
    }

    /// The channel target string the server sends back for this remote: `host:port`.
    public var target: String {
        remoteHost.contains(":") ? "[\(remoteHost)]:\(remotePort)" : "\(remoteHost):\(remotePort)"
    }

    /// chisel's display form: `R:8000=>localhost:6443` (drops `0.0.0.0:` and `127.0.0.1:`).
    public var display: String {
        var local = localHost.contains(":") ? "[\(localHost)]:\(localPort)" : "\(localHost):\(localPort)"
        if local.hasPrefix("0.0.0.0:") { local.removeFirst("0.0.0.0:".count) }
        var remote = target
        if remote.hasPrefix("127.0.0.1:") { remote.removeFirst("127.0.0.1:".count) }
        return "R:\(local)=>\(remote)"
    }

    /// The nine fields in the Go client's order.
    var jsonObject: String {
        "{\"LocalHost\":\(JSONText.quoted(localHost)),\"LocalPort\":\"\(localPort)\",\"LocalProto\":\"tcp\"," +
        "\"RemoteHost\":\(JSONText.quoted(remoteHost)),\"RemotePort\":\"\(remotePort)\",\"RemoteProto\":\"tcp\"," +
        "\"Socks\":false,\"Reverse\":true,\"Stdio\":false}"
    }
}

/// The raw JSON carried by the `config` global request.
public func chiselConfigJSON(version: String, remotes: [ChiselRemote]) -> String {
    "{\"Version\":\(JSONText.quoted(version)),\"Remotes\":[" + remotes.map(\.jsonObject).joined(separator: ",") + "]}"
}
