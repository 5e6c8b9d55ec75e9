import Reactor

/// Who may use the agent's HTTP server, in one step before routing (`HTTPRouter.admit`),
/// as agent-http-api.md says:
/// * open: `/health`, `/ready`, `/version` (probes), and `/metrics` unless `server.metrics_auth`;
/// * everything else needs the agent API token as `Authorization: Bearer <t>`, as the
///   `pipeops_token` cookie, or as `?token=<t>`. A browser (it asks for text/html) that brings
///   `?token=` is sent back to the same URL without it, with an HttpOnly SameSite=Strict cookie,
///   so the token leaves the address bar and the history. Tokens are compared in constant time;
///   a wrong or missing one gets `401` JSON;
/// * at most `server.rate_limit` requests per second per client address (a token bucket with
///   one second of burst), `429` with `Retry-After` beyond; probes are never limited, so a flood
///   cannot fail a liveness probe;
/// * `server.cors_enabled`: preflight `OPTIONS` is answered here (the server adds
///   `Access-Control-Allow-Origin: *` to every answer; the token is a header, not a cookie,
///   for cross-origin callers).
final class AccessPolicy {
    static let cookieName = "pipeops_token"
    static let openPaths: Set<Substring> = ["/health", "/ready", "/version"]
    /// Addresses remembered for the rate limit; past this, the idlest half is forgotten.
    static let maxTrackedAddresses = 4096

    private let token: () -> String?
    let metricsAuth: Bool
    let rateLimit: Int
    let corsEnabled: Bool
    private let loop: EventLoop
    private var buckets: [String: TokenBucket] = [:]

    /// `token` is asked on every check: the cluster token may rotate.
    init(loop: EventLoop, token: @escaping () -> String?, metricsAuth: Bool, rateLimit: Int, corsEnabled: Bool) {
        self.loop = loop
        self.token = token
        self.metricsAuth = metricsAuth
        self.rateLimit = rateLimit
        self.corsEnabled = corsEnabled
    }

    func admit(_ request: HTTPRequest, _ responder: HTTPResponder) -> Bool {
        let path = request.path
        if Self.openPaths.contains(path) { return true }
        if corsEnabled && request.method == "OPTIONS" {
            responder.send(204, headers: HTTPHeaders([
                ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID"),
                ("Access-Control-Max-Age", "600")]))
            return false
        }
        if rateLimit > 0, let peer = request.peer, !take(from: peer.ip) {
            responder.sendError(429, "rate limit: at most \(rateLimit) requests per second per address",
                                headers: HTTPHeaders([("Retry-After", "1")]))
            return false
        }
        if path == "/metrics" && !metricsAuth { return true }
        guard let expected = token(), !expected.isEmpty else {
            responder.sendError(401, "no agent API token is configured (server.api_token, PIPEOPS_AGENT_API_TOKEN or the cluster token)")
            return false
        }
        if let bearer = Self.bearerToken(request), Self.constantTimeEqual(bearer, expected) { return true }
        if let cookie = Self.cookieToken(request), Self.constantTimeEqual(cookie, expected) { return true }
        if let query = request.queryParameter("token"), Self.constantTimeEqual(query, expected) {
            guard request.method == "GET", request.header("Accept")?.contains("text/html") == true else { return true }
            responder.send(303, headers: HTTPHeaders([
                ("Location", Self.location(request, without: "token")),
                ("Set-Cookie", "\(Self.cookieName)=\(expected); Path=/; HttpOnly; SameSite=Strict"),
                ("Cache-Control", "no-store")]))
            return false
        }
        let sent = request.header("Authorization") != nil || request.queryParameter("token") != nil || Self.cookieToken(request) != nil
        responder.sendError(401, sent ? "wrong API token" : "an API token is required (Authorization: Bearer <token>)",
                            headers: HTTPHeaders([("WWW-Authenticate", "Bearer realm=\"pipeops-agent\"")]))
        return false
    }

    // MARK: Tokens

    static func bearerToken(_ request: HTTPRequest) -> String? {
        guard let value = request.header("Authorization") else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingSpaces
    }

    static func cookieToken(_ request: HTTPRequest) -> String? {
        for field in request.headers.fields where HTTPHeaders.sameName(field.name, "Cookie") {
            for pair in field.value.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2, String(kv[0]).trimmingSpaces == cookieName {
                    return String(kv[1]).trimmingSpaces
                }
            }
        }
        return nil
    }

    /// Equal in time that depends only on the lengths, not on where the first difference is.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        let n = max(x.count, y.count)
        for i in 0..<n {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }

    /// The request's own path and query, without the parameter `name`.
    static func location(_ request: HTTPRequest, without name: String) -> String {
        let kept = (request.query ?? "").split(separator: "&").filter {
            $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map { percentDecode($0) } != name
        }
        return kept.isEmpty ? String(request.path) : "\(request.path)?\(kept.joined(separator: "&"))"
    }

    // MARK: Rate limit

    private func take(from address: String) -> Bool {
        let now = loop.now
        if buckets.count >= Self.maxTrackedAddresses && buckets[address] == nil { forgetIdlest() }
        var bucket = buckets[address] ?? TokenBucket(tokens: Double(rateLimit), updated: now)
        let ok = bucket.take(rate: Double(rateLimit), burst: Double(rateLimit), now: now)
        buckets[address] = bucket
        return ok
    }

    private func forgetIdlest() {
        let byAge = buckets.sorted { $0.value.updated < $1.value.updated }
        for (address, _) in byAge.prefix(byAge.count / 2) { buckets.removeValue(forKey: address) }
    }
}

/// Tokens refill at `rate` per second up to `burst`; each request takes one.
struct TokenBucket {
    var tokens: Double
    var updated: Deadline

    mutating func take(rate: Double, burst: Double, now: Deadline) -> Bool {
        let elapsed = Double((now - updated).nanoseconds) / 1e9
        tokens = min(burst, tokens + max(0, elapsed) * rate)
        updated = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
