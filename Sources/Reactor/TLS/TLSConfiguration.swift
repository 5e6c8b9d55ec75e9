import CShims

/// A TLS protocol version we can negotiate. Nothing older than 1.2 is offered or accepted.
public enum TLSVersion: Sendable, Comparable, CustomStringConvertible {
    case tls12, tls13

    var openSSLValue: Int32 {
        switch self {
        case .tls12: return TLS1_2_VERSION
        case .tls13: return TLS1_3_VERSION
        }
    }

    init?(openSSLValue: Int32) {
        switch openSSLValue {
        case TLS1_2_VERSION: self = .tls12
        case TLS1_3_VERSION: self = .tls13
        default: return nil
        }
    }

    public var description: String { self == .tls12 ? "TLSv1.2" : "TLSv1.3" }
}

/// What a `TLSContext` is built from. Plain values, so a configuration can be made on any
/// thread and checked before any connection exists; the OpenSSL objects live in `TLSContext`.
public struct TLSConfiguration: Sendable {
    public enum Role: Sendable { case client, server }

    public var role: Role
    /// 1.3 is always preferred; this is the floor.
    public var minimumVersion: TLSVersion = .tls12
    /// ALPN protocol names in preference order ("h2", "http/1.1"); empty: no ALPN.
    public var alpnProtocols: [String] = []

    /// Trust the system's root store (OpenSSL's default paths, SSL_CERT_FILE/SSL_CERT_DIR).
    public var trustSystemRoots = true
    /// A PEM bundle of extra CAs. Clients trust it for servers; servers trust it for client certificates.
    public var additionalCAFile: String?
    /// Client only: accept any server certificate and any name. For labs, never for production.
    public var insecureSkipVerify = false

    /// Our certificate chain (PEM, leaf first) and its private key: required for servers,
    /// optional for clients (mutual TLS).
    public var certificateChainFile: String?
    public var privateKeyFile: String?

    /// Server only: ask for a client certificate and refuse the handshake without a valid one.
    public var requireClientCertificate = false

    public init(role: Role) { self.role = role }

    public static func client(alpn: [String] = [], additionalCAFile: String? = nil,
                              certificateChainFile: String? = nil, privateKeyFile: String? = nil,
                              insecureSkipVerify: Bool = false) -> TLSConfiguration {
        var c = TLSConfiguration(role: .client)
        c.alpnProtocols = alpn
        c.additionalCAFile = additionalCAFile
        c.certificateChainFile = certificateChainFile
        c.privateKeyFile = privateKeyFile
        c.insecureSkipVerify = insecureSkipVerify
        return c
    }

    public static func server(certificateChainFile: String, privateKeyFile: String,
                              alpn: [String] = []) -> TLSConfiguration {
        var c = TLSConfiguration(role: .server)
        c.certificateChainFile = certificateChainFile
        c.privateKeyFile = privateKeyFile
        c.alpnProtocols = alpn
        c.trustSystemRoots = false
        return c
    }

    /// ALPN names in the wire format: each name prefixed by its length.
    func alpnWireFormat() throws(TLSConfigurationError) -> [UInt8] {
        var wire: [UInt8] = []
        for name in alpnProtocols {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                throw TLSConfigurationError("ALPN protocol name '\(name)' must be 1-255 bytes, is \(bytes.count)")
            }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        return wire
    }
}

/// A configuration that OpenSSL refused: a missing or unreadable file, a key that does not
/// match its certificate, a bad ALPN name. The message names the file and OpenSSL's reason.
public struct TLSConfigurationError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
