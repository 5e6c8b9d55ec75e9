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
        let trimmed = text.trimmingCharacters(in: " ")
        guard !trimmed.isEmpty else { throw TunnelConfigError("tunnel server address is empty") }
        // A bare host[:port] means https; the rest is an ordinary URL.
        let url = trimmed.contains("://") ? trimmed : "https://" + trimmed
        let shown = URLUserinfo.redacted(url)
        let origin: HTTPOrigin, target: String
        do { (origin, target) = try HTTPClientRequest.parseURL(url) } catch {
            throw TunnelConfigError("tunnel server address '\(shown)': \(error)")
        }
        guard !origin.host.isEmpty else { throw TunnelConfigError("tunnel server address '\(shown)' has no host") }
        guard origin.port != 0 else { throw TunnelConfigError("tunnel server address '\(shown)': port 0") }
        return TunnelEndpoint(useTLS: origin.useTLS, host: origin.host, port: origin.port, path: target)
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

    /// The nine fields in the Go client's order (ports as strings, as Go's settings type has them).
    var json: JSONValue {
        .object([
            "LocalHost": .string(localHost), "LocalPort": .string(String(localPort)), "LocalProto": .string("tcp"),
            "RemoteHost": .string(remoteHost), "RemotePort": .string(String(remotePort)), "RemoteProto": .string("tcp"),
            "Socks": .bool(false), "Reverse": .bool(true), "Stdio": .bool(false),
        ])
    }
}

/// The raw JSON carried by the `config` global request.
public func chiselConfigJSON(version: String, remotes: [ChiselRemote]) -> String {
    JSONValue.object(["Version": .string(version), "Remotes": .array(remotes.map(\.json))]).text()
}
