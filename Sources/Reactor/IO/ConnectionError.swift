/// Why a connection ended.
public enum ConnectionError: ChainedError, Sendable, Equatable {
    case connect(ConnectError)          // the connection could not be made (resolve, refused, timed out)
    case tls(TLSError)                  // the TLS layer failed (handshake, certificate, record)
    case system(SocketError)            // a socket call failed on an open connection (ECONNRESET, ...)
    case timedOut(String)               // which phase ran out of time
    case protocolViolation(String)      // the peer sent something we refuse
    case closedLocally(String)          // we chose to close, and why

    public var layer: String { "connection" }

    /// Empty for `connect` and `tls`: their own error is the whole story.
    public var message: String {
        switch self {
        case .connect, .tls: return ""
        case .system(let e): return e.description
        case .timedOut(let what): return "timed out: \(what)"
        case .protocolViolation(let why): return "protocol error: \(why)"
        case .closedLocally(let why): return why
        }
    }

    public var cause: (any Error)? {
        switch self {
        case .connect(let e): return e
        case .tls(let e): return e
        case .system, .timedOut, .protocolViolation, .closedLocally: return nil
        }
    }

    public var description: String { chainDescription }
}
