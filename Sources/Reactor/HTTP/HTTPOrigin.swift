/// Where a client connects: scheme, host and port.
public struct HTTPOrigin: Sendable, Hashable, CustomStringConvertible {
    public var useTLS: Bool
    public var host: String
    public var port: Int

    public init(useTLS: Bool, host: String, port: Int) {
        self.useTLS = useTLS
        self.host = host
        self.port = port
    }

    /// `host:port` as it goes in a Host header or a CONNECT target (IPv6 in brackets).
    public var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(h):\(port)"
    }
    /// The Host header: the port only when it is not the scheme's default.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (useTLS ? 443 : 80) ? h : "\(h):\(port)"
    }
    public var description: String { "\(useTLS ? "https" : "http")://\(authority)" }
}
