import CShims

/// The private host key an SSH server signs its key exchanges with: ECDSA P-256
/// (`ecdsa-sha2-nistp256`, RFC 5656). Held as plain bytes so the value is Sendable; OpenSSL
/// rebuilds the key for each signature (once per key exchange).
public struct SSHServerHostKey: Sendable {
    public static let algorithm = "ecdsa-sha2-nistp256"
    let privateScalar: [UInt8]   // 32 bytes, big-endian
    public let publicPoint: [UInt8]   // 65 bytes, uncompressed

    /// A fresh random key.
    public static func generate() throws(SSHError) -> SSHServerHostKey {
        // 40 random bytes reduced as FIPS 186-4 B.4.1 does (the bias is below 2^-64).
        try SSHServerHostKey(reducing: try SSHRandom.bytes(40))
    }

    /// The key whose scalar is `bytes mod (n-1) + 1`: a deterministic key from any byte string
    /// (FIPS 186-4 B.4.1 with 40 bytes).
    public init(reducing bytes: [UInt8]) throws(SSHError) {
        var priv = [UInt8](repeating: 0, count: 32), pub = [UInt8](repeating: 0, count: 65)
        guard !bytes.isEmpty, shim_p256_private_from_integer(bytes, bytes.count, &priv, &pub) == 1 else {
            throw SSHError.crypto("P-256 key derivation failed")
        }
        privateScalar = priv
        publicPoint = pub
    }

    /// From the DER of a SEC1 `EC PRIVATE KEY` or a PKCS#8 `PRIVATE KEY` on P-256.
    public init(der: [UInt8]) throws(SSHError) {
        var priv = [UInt8](repeating: 0, count: 32), pub = [UInt8](repeating: 0, count: 65)
        guard shim_p256_private_from_der(der, der.count, &priv, &pub) == 1 else {
            throw SSHError.malformed("host key: not a P-256 EC private key (SEC1 or PKCS#8 DER)")
        }
        privateScalar = priv
        publicPoint = pub
    }

    /// From PEM text holding one `EC PRIVATE KEY` or `PRIVATE KEY` block.
    public init(pem text: String) throws(SSHError) {
        var body: [String] = []
        var inside = false, found = false
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingSpaces
            if line == "-----BEGIN EC PRIVATE KEY-----" || line == "-----BEGIN PRIVATE KEY-----" { inside = true; continue }
            if inside && line.hasPrefix("-----END ") { found = true; break }
            if inside && !line.contains(":") { body.append(line) }   // skips RFC 1421 headers
        }
        guard found else { throw SSHError.malformed("host key: no 'BEGIN EC PRIVATE KEY' (or 'BEGIN PRIVATE KEY') PEM block") }
        guard let der = Base64.decode(body.joined()) else { throw SSHError.malformed("host key: PEM body is not valid base64") }
        try self.init(der: der)
    }

    /// `string "ecdsa-sha2-nistp256" || string "nistp256" || string Q`: the `K_S` a client sees.
    public var publicKeyBlob: [UInt8] {
        var b: [UInt8] = []
        b.sshString(Self.algorithm); b.sshString("nistp256"); b.sshString(publicPoint)
        return b
    }

    /// The public half as a client checks it (fingerprints).
    public var publicKey: SSHHostKey {
        SSHHostKey(trustedBlob: publicKeyBlob, keyType: Self.algorithm)
    }

    /// The SSH signature blob over `message`: `string algorithm || string (mpint r || mpint s)`.
    func signatureBlob(over message: [UInt8]) throws(SSHError) -> [UInt8] {
        var r = [UInt8](repeating: 0, count: 32), s = [UInt8](repeating: 0, count: 32)
        guard shim_p256_sign(privateScalar, publicPoint, message, message.count, &r, &s) == 1 else {
            throw SSHError.crypto("ECDSA P-256 signing failed")
        }
        var inner: [UInt8] = []
        inner.sshMPInt(r); inner.sshMPInt(s)
        var b: [UInt8] = []
        b.sshString(Self.algorithm); b.sshString(inner)
        return b
    }
}
