import CShims

/// Why a TLS session failed, with OpenSSL's reason and, for a rejected certificate, the X509
/// verify result, so a caller can tell "expired" from "hostname mismatch" without parsing text.
public enum TLSError: ChainedError, Sendable, Equatable {
    /// The handshake failed for a reason other than the certificate check (alert, protocol).
    case handshake(peer: String, reason: String)
    /// The peer's certificate was rejected.
    case verify(peer: String, TLSVerifyFailure)
    case handshakeTimedOut(peer: String, after: TimeAmount)
    /// The connection ended before the handshake finished.
    case closedDuringHandshake(peer: String)
    /// A fatal error after the handshake (bad record, alert).
    case session(peer: String, reason: String)
    /// The session could not be set up (SSL_new, server name).
    case setup(peer: String, reason: String)

    public var layer: String { "tls" }

    public var message: String {
        switch self {
        case .handshake(let p, let r): return "TLS handshake with \(p) failed: \(r)"
        case .verify(let p, let v): return "TLS handshake with \(p) failed: \(v)"
        case .handshakeTimedOut(let p, let after): return "TLS handshake with \(p) timed out after \(after)"
        case .closedDuringHandshake(let p): return "TLS handshake with \(p) failed: connection closed by peer"
        case .session(let p, let r): return "TLS with \(p): \(r)"
        case .setup(let p, let r): return "TLS to \(p): \(r)"
        }
    }

    public var cause: (any Error)? { nil }
    public var description: String { chainDescription }
}

/// A certificate check that failed: the X509 verify result (`X509_V_ERR_*`) and OpenSSL's
/// words for it ("certificate verify failed: certificate has expired").
public struct TLSVerifyFailure: Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let reason: String

    public init(code: Int32, reason: String) {
        self.code = code
        self.reason = reason
    }

    public static var certificateExpired: Int32 { X509_V_ERR_CERT_HAS_EXPIRED }
    public static var hostnameMismatch: Int32 { X509_V_ERR_HOSTNAME_MISMATCH }
    public var isExpired: Bool { code == Self.certificateExpired }
    public var description: String { reason }
}
