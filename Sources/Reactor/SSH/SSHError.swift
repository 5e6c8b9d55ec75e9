/// Why an SSH connection (or one request on it) failed. Texts name the field, offset or limit.
public enum SSHError: Error, Sendable, CustomStringConvertible, Equatable {
    case malformed(String)              // a message did not parse
    case protocolError(String)          // a message arrived where it is not allowed
    case limitExceeded(String)          // a size limit was hit
    case crypto(String)                 // MAC/tag check failed, or an OpenSSL call failed
    case negotiation(String)            // no common algorithm
    case hostKey(String)                // signature or fingerprint check failed
    case authentication(String)         // every method we have was refused
    case disconnected(reason: UInt32, text: String)  // the server sent DISCONNECT
    case closed(String)                 // the stream under us ended

    public var description: String {
        switch self {
        case .malformed(let s): return "ssh: malformed message: \(s)"
        case .protocolError(let s): return "ssh: protocol error: \(s)"
        case .limitExceeded(let s): return "ssh: limit exceeded: \(s)"
        case .crypto(let s): return "ssh: \(s)"
        case .negotiation(let s): return "ssh: no common algorithm: \(s)"
        case .hostKey(let s): return "ssh: \(s)"
        case .authentication(let s): return "ssh: unable to authenticate: \(s)"
        case .disconnected(let code, let text): return "ssh: disconnected by server (reason \(code)): \(text)"
        case .closed(let s): return "ssh: connection closed: \(s)"
        }
    }
}
