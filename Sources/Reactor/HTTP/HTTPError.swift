/// Why an HTTP request got no usable response: the connection could not be made (its
/// `ConnectError` or `TLSError` kept as the cause), a deadline passed in a named phase, or the
/// server's answer broke the protocol. A status code is not an error here: callers decide.
public enum HTTPError: ChainedError, Sendable, Equatable {
    /// Where a request was when its time ran out.
    public enum Phase: String, Sendable, Equatable {
        case connecting = "connecting"                 // dialling, or waiting for a pooled connection
        case waitingForResponse = "waiting for the response"
        case readingBody = "reading the body"
        case silence = "no response data"              // the read-idle limit between bytes
    }

    case connect(ConnectError)
    case tls(TLSError)
    /// The connection failed otherwise (proxy refused CONNECT, reset mid-response).
    case transport(ConnectionError)
    case timedOut(phase: Phase, after: TimeAmount)
    case malformedResponse(String)
    case bodyTooLarge(limit: Int)
    /// The server closed the connection before the response was complete.
    case closedEarly
    /// Too many requests already wait for a connection to this origin.
    case tooManyWaiting(limit: Int, origin: HTTPOrigin)

    /// Keeps the connect and TLS errors typed.
    public init(_ error: ConnectionError) {
        switch error {
        case .connect(let e): self = .connect(e)
        case .tls(let e): self = .tls(e)
        default: self = .transport(error)
        }
    }

    public var layer: String { "http" }

    /// Empty for the connection's own errors: they say it all.
    public var message: String {
        switch self {
        case .connect, .tls, .transport: return ""
        case .timedOut(.silence, let after): return "no response data for \(after)"
        case .timedOut(let phase, let after): return "timed out \(phase.rawValue) after \(after)"
        case .malformedResponse(let why): return "malformed response: \(why)"
        case .bodyTooLarge(let limit): return "response body exceeds \(limit) bytes"
        case .closedEarly: return "connection closed before the response was complete"
        case .tooManyWaiting(let limit, let origin): return "\(limit) requests already wait for a connection to \(origin)"
        }
    }

    public var cause: (any Error)? {
        switch self {
        case .connect(let e): return e
        case .tls(let e): return e
        case .transport(let e): return e
        default: return nil
        }
    }

    public var description: String { chainDescription }
}
