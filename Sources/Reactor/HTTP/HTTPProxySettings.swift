/// HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as curl and Go read them (lower-case names win).
public struct HTTPProxySettings: Sendable, Equatable {
    public struct Proxy: Sendable, Equatable {
        public var host: String
        public var port: Int
        /// `user:pass` from the proxy URL, sent as Basic Proxy-Authorization.
        public var credentials: String?
    }

    public var httpProxy: Proxy?
    public var httpsProxy: Proxy?
    public var noProxy: [String] = []

    public init(httpProxy: Proxy? = nil, httpsProxy: Proxy? = nil, noProxy: [String] = []) {
        self.httpProxy = httpProxy
        self.httpsProxy = httpsProxy
        self.noProxy = noProxy
    }

    public static let none = HTTPProxySettings()

    /// Reads the variables from `environment` (pass the process environment).
    public static func fromEnvironment(_ environment: [String: String]) throws(AddressError) -> HTTPProxySettings {
        func get(_ name: String) -> String? {
            let v = environment[name.lowercased()] ?? environment[name.uppercased()]
            return (v?.isEmpty ?? true) ? nil : v
        }
        var s = HTTPProxySettings()
        if let v = get("http_proxy") { s.httpProxy = try parseProxy(v) }
        if let v = get("https_proxy") { s.httpsProxy = try parseProxy(v) }
        if let v = get("no_proxy") {
            s.noProxy = v.split(separator: ",").map { String(trimOWS($0)).lowercased() }.filter { !$0.isEmpty }
        }
        return s
    }

    /// `http://[user:pass@]host[:port][/]`; the scheme may be left out. Only http proxies.
    public static func parseProxy(_ text: String) throws(AddressError) -> Proxy {
        var rest = Substring(text)
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        // The proxy's user:password never goes into an error message.
        let shown = URLUserinfo.redacted(parts.count == 2 ? text : "http://" + text)
        if parts.count == 2 {
            guard parts[0].lowercased() == "http" else { throw AddressError(message: "proxy '\(shown)': only http:// proxies are supported") }
            rest = parts[1]
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var credentials: String?
        if let at = rest.lastIndex(of: "@") {
            credentials = percentDecode(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        let hostPort = rest.contains(":") && !(rest.hasPrefix("[") && rest.hasSuffix("]")) ? String(rest) : "\(rest):80"
        let (host, port) = try SocketAddress.splitHostPort(hostPort)
        guard !host.isEmpty else { throw AddressError(message: "proxy '\(shown)': no host") }
        return Proxy(host: host, port: port, credentials: credentials)
    }

    /// The proxy to use for `origin`, or nil to go direct.
    public func proxy(for origin: HTTPOrigin) -> Proxy? {
        guard let p = origin.useTLS ? httpsProxy : httpProxy else { return nil }
        return bypasses(origin) ? nil : p
    }

    /// NO_PROXY: `*`, exact hosts, domain suffixes (`example.com` and `.example.com` both match
    /// `a.example.com`), optional `:port`.
    public func bypasses(_ origin: HTTPOrigin) -> Bool {
        let host = origin.host.lowercased()
        for var entry in noProxy {
            if entry == "*" { return true }
            var port: Int?
            if let colon = entry.lastIndex(of: ":"), !entry.hasSuffix("]"), entry.filter({ $0 == ":" }).count == 1 {
                port = Int(entry[entry.index(after: colon)...])
                entry = String(entry[..<colon])
            }
            if entry.hasPrefix("[") && entry.hasSuffix("]") { entry = String(entry.dropFirst().dropLast()) }
            if let port, port != origin.port { continue }
            if entry.hasPrefix(".") { entry.removeFirst() }
            if entry.hasPrefix("*.") { entry.removeFirst(2) }
            if host == entry || host.hasSuffix("." + entry) { return true }
        }
        return false
    }
}
