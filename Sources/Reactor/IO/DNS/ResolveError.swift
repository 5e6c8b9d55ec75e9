/// Why a name did not resolve. Each case names the host, and `description` is the one line that
/// logs, /ready and the hub show, so an operator can tell a typo (no such name) from a DNS
/// server that is down (timeout, unreachable) or unwilling (refused, server failure).
public enum ResolveError: Error, Sendable, CustomStringConvertible, Equatable {
    /// NXDOMAIN: the name does not exist (after every search domain).
    case noSuchName(host: String)
    /// NODATA: the name exists but has no IPv4 or IPv6 address.
    case noAddress(host: String)
    /// No answer before the lookup's deadline (or before c-ares ran out of attempts).
    case timedOut(host: String, servers: [String], after: TimeAmount)
    /// The server answered REFUSED (it will not recurse for us, or an ACL).
    case refused(host: String, servers: [String])
    /// The server answered SERVFAIL (its upstream or DNSSEC failed), or NOTIMP/FORMERR.
    case serverFailure(host: String, servers: [String])
    /// Nothing listens at the server's address (ICMP port unreachable, TCP reset).
    case unreachable(host: String, servers: [String])
    /// Not a name DNS can carry (empty label, too long, spaces); no query was sent.
    case badName(host: String, why: String)
    /// `limit` lookups were already waiting for DNS; this one was not started.
    case tooManyLookups(host: String, limit: Int)
    /// The resolver was shut down before the answer came.
    case cancelled(host: String)
    /// Anything else c-ares reports (out of memory, an unreadable resolv.conf), in its words.
    case failed(host: String, reason: String)

    public var host: String {
        switch self {
        case .noSuchName(let h), .noAddress(let h), .timedOut(let h, _, _), .refused(let h, _),
             .serverFailure(let h, _), .unreachable(let h, _), .badName(let h, _),
             .tooManyLookups(let h, _), .cancelled(let h), .failed(let h, _):
            return h
        }
    }

    public var description: String { "cannot resolve '\(host)': \(reason)" }

    /// The part after the host: what went wrong, naming the servers asked where that helps.
    public var reason: String {
        switch self {
        case .noSuchName: return "no such name (NXDOMAIN)"
        case .noAddress: return "the name has no IPv4 or IPv6 address (NODATA)"
        case .timedOut(_, let servers, let after): return "no answer from \(Self.list(servers)) within \(after)"
        case .refused(_, let servers): return "\(Self.list(servers)) refused the query (REFUSED)"
        case .serverFailure(_, let servers): return "\(Self.list(servers)) failed to answer (SERVFAIL)"
        case .unreachable(_, let servers): return "\(Self.list(servers)) unreachable (connection refused)"
        case .badName(_, let why): return "not a valid host name: \(why)"
        case .tooManyLookups(_, let limit): return "\(limit) lookups already in flight (the limit); not started"
        case .cancelled: return "the resolver shut down before the answer came"
        case .failed(_, let reason): return reason
        }
    }

    private static func list(_ servers: [String]) -> String {
        servers.isEmpty ? "the DNS server" : "DNS server \(servers.joined(separator: ", "))"
    }
}

extension ResolveError {
    /// The same error for another spelling of the name (a cached or shared answer).
    func renamed(_ host: String) -> ResolveError {
        switch self {
        case .noSuchName: return .noSuchName(host: host)
        case .noAddress: return .noAddress(host: host)
        case .timedOut(_, let s, let t): return .timedOut(host: host, servers: s, after: t)
        case .refused(_, let s): return .refused(host: host, servers: s)
        case .serverFailure(_, let s): return .serverFailure(host: host, servers: s)
        case .unreachable(_, let s): return .unreachable(host: host, servers: s)
        case .badName(_, let why): return .badName(host: host, why: why)
        case .tooManyLookups(_, let limit): return .tooManyLookups(host: host, limit: limit)
        case .cancelled: return .cancelled(host: host)
        case .failed(_, let reason): return .failed(host: host, reason: reason)
        }
    }
}

/// The resolver could not be set up (c-ares refused its options or its resolv.conf).
public struct ResolverSetupError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { "DNS resolver: \(message)" }
}
