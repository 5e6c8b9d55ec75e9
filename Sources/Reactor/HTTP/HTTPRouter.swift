/// A request as a handler sees it: the head, the whole body (bounded by the server's limit)
/// and the client's address.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: [UInt8]
    public var peer: SocketAddress?

    public init(head: HTTPRequestHead, body: [UInt8] = [], peer: SocketAddress? = nil) {
        self.head = head
        self.body = body
        self.peer = peer
    }

    public var method: String { head.method }
    public var target: String { head.target }
    public var path: Substring { head.path }
    public var query: Substring? { head.query }
    public var headers: HTTPHeaders { head.headers }
    public func header(_ name: String) -> String? { head.headers[name] }

    /// The decoded value of query parameter `name` (percent and '+' decoding).
    public func queryParameter(_ name: String) -> String? {
        guard let q = query else { return nil }
        for pair in q.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if percentDecode(parts[0]) == name { return parts.count > 1 ? percentDecode(parts[1]) : "" }
        }
        return nil
    }
}

/// `%XX` and `+` decoding of a query component.
public func percentDecode<S: StringProtocol>(_ s: S) -> String {
    var out: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == UInt8(ascii: "+") { out.append(0x20); continue }
        if b == UInt8(ascii: "%"), it.count >= 2, let h = hexValue(it[it.startIndex]), let l = hexValue(it[it.startIndex + 1]) {
            out.append(UInt8(h << 4 | l))
            it = it.dropFirst(2)
            continue
        }
        out.append(b)
    }
    return String(decoding: out, as: UTF8.self)
}

public typealias HTTPHandler = (HTTPRequest, HTTPResponder) -> Void

/// Routes by exact path, then by the longest matching prefix; within a path, by method.
/// Unknown path: 404 JSON; known path, other method: 405 with `Allow`. A GET route also
/// answers HEAD (the server drops the body).
public final class HTTPRouter {
    struct Route {
        /// The path or prefix it was added under: what `HTTPResponseRecord.route` reports.
        let pattern: String
        var handlers: [(method: String, handler: HTTPHandler)] = []
        var allow: String { handlers.map(\.method).joined(separator: ", ") }
        func handler(for method: String) -> HTTPHandler? {
            for h in handlers where h.method == method { return h.handler }
            if method == "HEAD" { return handler(for: "GET") }
            return nil
        }
    }

    private var exact: [String: Route] = [:]
    private var prefixes: [(prefix: String, route: Route)] = []
    /// Runs before routing (access checks: token, rate limit, CORS preflight). Returns false
    /// when it has answered the request itself; the route is then not run.
    public var admit: ((HTTPRequest, HTTPResponder) -> Bool)?

    public init() {}

    public func add(_ method: String, _ path: String, _ handler: @escaping HTTPHandler) {
        exact[path, default: Route(pattern: path)].handlers.append((method, handler))
    }

    /// Every path starting with `prefix` (e.g. "/api/realtime/").
    public func addPrefix(_ method: String, _ prefix: String, _ handler: @escaping HTTPHandler) {
        if let i = prefixes.firstIndex(where: { $0.prefix == prefix }) {
            prefixes[i].route.handlers.append((method, handler))
        } else {
            prefixes.append((prefix, Route(pattern: prefix, handlers: [(method, handler)])))
            prefixes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
        }
    }

    /// Whether a request for `path` would reach a handler (features are detected from this).
    public func routes(_ path: String) -> Bool {
        exact[path] != nil || prefixes.contains { path.hasPrefix($0.prefix) }
    }

    public func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let path = request.path
        var route = exact[String(path)]
        if route == nil {
            for p in prefixes where path.hasPrefix(p.prefix) { route = p.route; break }
        }
        // Tagged before the access checks, so a 401 or 429 is reported under its route.
        if let route { responder.connection?.route = route.pattern }
        if let admit, !admit(request, responder) { return }
        guard let route else {
            responder.sendError(404, "not found: \(path)")
            return
        }
        guard let handler = route.handler(for: request.method) else {
            var h = HTTPHeaders()
            h.add("Allow", route.allow)
            responder.sendError(405, "method \(request.method) not allowed on \(path)", headers: h)
            return
        }
        handler(request, responder)
    }
}
