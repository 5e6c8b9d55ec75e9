/// A request for `HTTPClient`.
public struct HTTPClientRequest: Sendable {
    public var method: String
    public var origin: HTTPOrigin
    /// Path and query, e.g. `/api/v1/pods?watch=1`.
    public var target: String
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(method: String = "GET", origin: HTTPOrigin, target: String = "/", headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.method = method
        self.origin = origin
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// From `http://host[:port]/path?q` or `https://…`.
    public init(method: String = "GET", url: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) throws(AddressError) {
        let (origin, target) = try Self.parseURL(url)
        self.init(method: method, origin: origin, target: target, headers: headers, body: body)
    }

    public static func parseURL(_ url: String) throws(AddressError) -> (HTTPOrigin, String) {
        let shown = URLUserinfo.redacted(url)
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw AddressError(message: "URL '\(shown)' has no scheme") }
        let scheme = parts[0].lowercased()
        guard scheme == "http" || scheme == "https" || scheme == "ws" || scheme == "wss" else {
            throw AddressError(message: "URL '\(shown)': scheme '\(scheme)' is not http, https, ws or wss")
        }
        let tls = scheme == "https" || scheme == "wss"
        var rest = parts[1]
        var target = "/"
        if let i = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            target = rest[i] == "?" ? "/" + rest[i...] : String(rest[i...])
            rest = rest[..<i]
        }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        guard !rest.isEmpty else { throw AddressError(message: "URL '\(shown)' has no host") }
        let defaultPort = tls ? 443 : 80
        let host: String
        let port: Int
        if rest.hasPrefix("[") && rest.hasSuffix("]") {
            host = String(rest.dropFirst().dropLast()); port = defaultPort
        } else if rest.hasPrefix("[") || rest.contains(":") {
            (host, port) = try SocketAddress.splitHostPort(String(rest))
        } else {
            host = String(rest); port = defaultPort
        }
        // Port 0 is a listener's "any port"; a URL names a server, which has a real one.
        guard !host.isEmpty else { throw AddressError(message: "URL '\(shown)' has no host") }
        guard port != 0 else { throw AddressError(message: "URL '\(shown)': port 0 is not a port a server listens on") }
        return (HTTPOrigin(useTLS: tls, host: host, port: port), target)
    }

    var isRetryable: Bool { ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"].contains(method) }
}

/// A whole response (from `HTTPClient.fetch`).
public struct HTTPClientResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: [UInt8]
    public var trailers: HTTPHeaders
    public var status: Int { head.status }
    public var headers: HTTPHeaders { head.headers }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}
