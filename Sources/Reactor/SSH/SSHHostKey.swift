import CShims

/// A server host key as sent in KEX_ECDH_REPLY (`K_S`), with signature checks and the
/// fingerprint forms people paste: chisel's padded base64 SHA-256, OpenSSH's `SHA256:` form
/// and the legacy MD5 colon-hex form.
public struct SSHHostKey: Sendable, Equatable {
    public let blob: [UInt8]
    public let keyType: String

    public init(blob: [UInt8]) throws {
        self.blob = blob
        keyType = try blob.withUnsafeBytes { raw in
            var r = SSHReader(raw, context: "host key")
            return try r.readText("key type")
        }
    }

    /// For a blob we built ourselves (a server's own key).
    init(trustedBlob: [UInt8], keyType: String) {
        blob = trustedBlob
        self.keyType = keyType
    }

    /// Standard base64 of SHA-256 over the blob, with `=` padding (44 characters): chisel's form.
    public var fingerprintSHA256Base64: String { Base64.encode(SSHDigest.sha256.hash(blob)) }
    /// `SHA256:` and the same base64 without padding: OpenSSH's form.
    public var fingerprintOpenSSH: String {
        "SHA256:" + String(fingerprintSHA256Base64.filter { $0 != "=" })
    }
    /// Lowercase hex bytes of MD5 over the blob, joined by `:`.
    public var fingerprintMD5: String {
        SSHDigest.md5.hash(blob).map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined(separator: ":")
    }

    /// Checks `expected` in whichever form it is written. Empty accepts any key (the caller warns).
    public func matches(fingerprint expected: String) -> Bool {
        if expected.isEmpty { return true }
        if expected.hasPrefix("SHA256:") { return expected == fingerprintOpenSSH }
        if Base64.decode(expected) != nil { return expected == fingerprintSHA256Base64 }
        // Not base64: chisel treats it as a (prefix of a) legacy MD5 fingerprint.
        return fingerprintMD5.hasPrefix(expected.lowercased())
    }

    /// Verifies `signature` (an SSH signature blob) over `message` for the negotiated algorithm.
    func verify(signature: [UInt8], message: [UInt8], algorithm: String) throws {
        let keyFamily = algorithm.hasPrefix("rsa-sha2-") ? "ssh-rsa" : algorithm
        guard keyType == keyFamily else {
            throw SSHError.hostKey("host key type \(keyType) does not match negotiated algorithm \(algorithm)")
        }
        let ok: Bool = try blob.withUnsafeBytes { key in
            try signature.withUnsafeBytes { sig in
                var kr = SSHReader(key, context: "host key \(keyType)")
                var sr = SSHReader(sig, context: "host key signature")
                _ = try kr.readString("key type")
                let sigType = try sr.readText("signature type")
                guard sigType == algorithm else {
                    throw SSHError.hostKey("signature type \(sigType) does not match negotiated algorithm \(algorithm)")
                }
                let sigBytes = try sr.readString("signature")
                return try Self.check(algorithm: algorithm, key: &kr, sig: sigBytes, message: message)
            }
        }
        guard ok else { throw SSHError.hostKey("host key signature check failed (\(algorithm))") }
    }

    private static func check(algorithm: String, key kr: inout SSHReader, sig: UnsafeRawBufferPointer, message: [UInt8]) throws -> Bool {
        let sigPtr = sig.baseAddress?.assumingMemoryBound(to: UInt8.self)
        switch algorithm {
        case "ssh-ed25519":
            let pub = try kr.readBytes("public key")
            guard pub.count == 32 else { throw SSHError.malformed("ssh-ed25519 public key is \(pub.count) bytes, want 32") }
            return shim_ed25519_verify(pub, sigPtr, sig.count, message, message.count) == 1
        case "ecdsa-sha2-nistp256":
            let curve = try kr.readText("curve")
            guard curve == "nistp256" else { throw SSHError.malformed("ecdsa key curve '\(curve)', want nistp256") }
            let point = try kr.readBytes("Q")
            var sr = SSHReader(sig, context: "ecdsa signature")
            let r = try sr.readMPInt("r"), s = try sr.readMPInt("s")
            return shim_ecdsa_verify(256, point, point.count, r, r.count, s, s.count, message, message.count) == 1
        case "rsa-sha2-256", "rsa-sha2-512":
            let e = try kr.readMPInt("e"), n = try kr.readMPInt("n")
            guard n.count <= 2048 else { throw SSHError.limitExceeded("RSA modulus of \(n.count * 8) bits") }
            return shim_rsa_verify(n, n.count, e, e.count, algorithm == "rsa-sha2-512" ? 2 : 1, sigPtr, sig.count, message, message.count) == 1
        default:
            throw SSHError.negotiation("host key algorithm \(algorithm) is not implemented")
        }
    }
}
