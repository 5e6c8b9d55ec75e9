/// Why an SSH connection (or one request on it) failed. Texts name the field, offset or limit.
/// A failure below SSH (connect, TLS, WebSocket) stays typed as the cause of `.transport`.
public enum SSHError: ChainedError, Sendable, Equatable {
    case malformed(String)              // a message did not parse
    case protocolError(String)          // a message arrived where it is not allowed
    case limitExceeded(String)          // a size limit was hit
    case crypto(String)                 // MAC/tag check failed, or an OpenSSL call failed
    case negotiation(String)            // no common algorithm
    case hostKey(String)                // signature check failed, or the key changed on re-exchange
    case hostKeyMismatch(expected: String, got: String)  // the server's key is not the configured one
    case authentication(String)         // every method we have was refused
    case disconnected(reason: UInt32, text: String)  // the server sent DISCONNECT
    case closed(String)                 // the stream under us ended, or a handshake deadline passed
    case transport(ConnectionError)     // the stream under us failed
    case unexpected(UnderlyingError)    // a step failed with an error that is not SSH's

    public var layer: String { "ssh" }

    public var message: String {
        switch self {
        case .malformed(let s): return "ssh: malformed message: \(s)"
        case .protocolError(let s): return "ssh: protocol error: \(s)"
        case .limitExceeded(let s): return "ssh: limit exceeded: \(s)"
        case .crypto(let s): return "ssh: \(s)"
        case .negotiation(let s): return "ssh: no common algorithm: \(s)"
        case .hostKey(let s): return "ssh: \(s)"
        case .hostKeyMismatch(let expected, let got): return "ssh: host key fingerprint mismatch: got \(got), expected \(expected)"
        case .authentication(let s): return "ssh: unable to authenticate: \(s)"
        case .disconnected(let code, let text): return "ssh: disconnected by server (reason \(code)): \(text)"
        case .closed(let s): return "ssh: connection closed: \(s)"
        case .transport: return "ssh: connection lost"
        case .unexpected: return "ssh"
        }
    }

    public var cause: (any Error)? {
        switch self {
        case .transport(let e): return e
        case .unexpected(let e): return e.error
        default: return nil
        }
    }

    public var description: String { chainDescription }

    /// An error from an SSH step, as an SSHError: its own, or the foreign one kept as the cause.
    static func from(_ error: any Error) -> SSHError {
        error as? SSHError ?? .unexpected(UnderlyingError(error))
    }
}
