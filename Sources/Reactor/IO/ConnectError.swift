import Glibc

/// Why a TCP connection could not be made, named by what happened rather than by errno, so
/// `/ready` and the logs can say "connect to 10.0.0.5:6443: refused". `target` is the
/// `host:port` (or address) we were trying.
public enum ConnectError: ChainedError, Sendable, Equatable {
    /// The name did not resolve; the resolver's own error (NXDOMAIN, timeout, …) is the cause.
    case resolve(target: String, UnderlyingError)
    /// The name resolved to no address we can use.
    case noAddress(target: String)
    /// Nothing listens there (ECONNREFUSED).
    case refused(target: String)
    /// No answer within `after`; nil when the kernel gave up by itself (ETIMEDOUT).
    case timedOut(target: String, after: TimeAmount?)
    /// No route (ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL).
    case unreachable(target: String, SocketError)
    /// The peer reset the connection before it was up (ECONNRESET).
    case reset(target: String)
    /// Any other failed call on the way (socket(), EMFILE, epoll_ctl).
    case system(target: String, SocketError)

    /// Names the errno of a failed connect.
    public init(target: String, errno: Int32) {
        switch errno {
        case ECONNREFUSED: self = .refused(target: target)
        case ETIMEDOUT: self = .timedOut(target: target, after: nil)
        case ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL:
            self = .unreachable(target: target, SocketError(operation: "connect", errno: errno))
        case ECONNRESET: self = .reset(target: target)
        default: self = .system(target: target, SocketError(operation: "connect", errno: errno))
        }
    }

    public var target: String {
        switch self {
        case .resolve(let t, _), .noAddress(let t), .refused(let t), .timedOut(let t, _),
             .unreachable(let t, _), .reset(let t), .system(let t, _):
            return t
        }
    }

    public var layer: String { "connect" }

    /// Errno names stay in the text ("ECONNREFUSED (Connection refused)"): operators search for them.
    public var message: String {
        switch self {
        case .resolve(let t, _): return "connect to \(t)"
        case .noAddress(let t): return "connect to \(t): the name has no usable address"
        case .refused(let t): return "connect to \(t): \(Self.errnoText(ECONNREFUSED))"
        case .timedOut(let t, let after): return "connect to \(t): timed out" + (after.map { " after \($0)" } ?? "")
        case .unreachable(let t, let e): return "connect to \(t): \(Self.errnoText(e.errno))"
        case .reset(let t): return "connect to \(t): \(Self.errnoText(ECONNRESET))"
        case .system(let t, let e): return "connect to \(t): \(e)"
        }
    }

    private static func errnoText(_ code: Int32) -> String {
        let e = SocketError(operation: "", errno: code)
        return "\(e.errnoName) (\(String(cString: strerror(code))))"
    }

    public var cause: (any Error)? {
        if case .resolve(_, let e) = self { return e.error }
        return nil
    }

    public var description: String { chainDescription }
}
