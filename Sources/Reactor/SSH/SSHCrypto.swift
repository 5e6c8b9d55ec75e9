import CShims

/// Swift faces of the libcrypto calls in CShims/crypto_shims.c. No primitive is written here.
public enum SSHDigest: Int32, Sendable {
    case sha256 = 1, sha512 = 2, md5 = 3, sha384 = 4

    public var length: Int {
        switch self { case .sha256: return 32; case .sha512: return 64; case .md5: return 16; case .sha384: return 48 }
    }

    public func hash<C: Collection>(_ data: C) -> [UInt8] where C.Element == UInt8 {
        let input = Array(data)
        var out = [UInt8](repeating: 0, count: 64)
        let n = input.withUnsafeBufferPointer { shim_digest(rawValue, $0.baseAddress, $0.count, &out) }
        return Array(out[0..<Int(max(n, 0))])
    }
}

enum SSHRandom {
    static func bytes(_ count: Int) throws(SSHError) -> [UInt8] {
        do { return try SecureRandom.bytes(count) } catch { throw SSHError.crypto("\(error)") }
    }
}

/// An X25519 key pair for one key exchange (RFC 7748 through EVP_PKEY_X25519).
struct X25519KeyPair {
    let privateKey: [UInt8]
    let publicKey: [UInt8]

    init() throws(SSHError) {
        var priv = [UInt8](repeating: 0, count: 32), pub = [UInt8](repeating: 0, count: 32)
        guard shim_x25519_keygen(&priv, &pub) == 1 else { throw SSHError.crypto("X25519 key generation failed") }
        privateKey = priv
        publicKey = pub
    }

    init(privateKey: [UInt8]) throws(SSHError) {
        guard privateKey.count == 32 else { throw SSHError.crypto("X25519 private key must be 32 bytes") }
        self.privateKey = privateKey
        // The public key is the shared secret with the base point 9.
        var base = [UInt8](repeating: 0, count: 32); base[0] = 9
        publicKey = try X25519KeyPair.agree(privateKey, base)
    }

    static func agree(_ priv: [UInt8], _ peer: [UInt8]) throws(SSHError) -> [UInt8] {
        guard peer.count == 32 else { throw SSHError.malformed("X25519 public key is \(peer.count) bytes, want 32") }
        var out = [UInt8](repeating: 0, count: 32)
        guard shim_x25519(priv, peer, &out) == 1 else { throw SSHError.crypto("X25519 key agreement failed (bad peer key)") }
        // An all-zero result means a low-order peer point (RFC 7748 section 6.1).
        guard out.contains(where: { $0 != 0 }) else { throw SSHError.crypto("X25519 shared secret is zero") }
        return out
    }

    func sharedSecret(with peer: [UInt8]) throws(SSHError) -> [UInt8] { try X25519KeyPair.agree(privateKey, peer) }
}

/// An ephemeral P-256 key (ecdh-sha2-nistp256); the private half stays inside OpenSSL.
final class P256KeyPair {
    private let key: OpaquePointer
    let publicKey: [UInt8]   // uncompressed point, 65 bytes

    init() throws(SSHError) {
        var pub = [UInt8](repeating: 0, count: 65)
        guard let k = shim_p256_keygen(&pub) else { throw SSHError.crypto("P-256 key generation failed") }
        key = k
        publicKey = pub
    }

    deinit { shim_pkey_free(key) }

    func sharedSecret(with peer: [UInt8]) throws(SSHError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        guard shim_p256_derive(key, peer, peer.count, &out) == 1 else {
            throw SSHError.crypto("ECDH P-256 key agreement failed (bad peer point, \(peer.count) bytes)")
        }
        return out
    }
}

/// One side's ephemeral key for the negotiated exchange (curve25519-sha256 or ecdh-sha2-nistp256).
enum SSHEphemeralKey {
    case x25519(X25519KeyPair)
    case p256(P256KeyPair)

    init(kex: String) throws(SSHError) {
        self = kex == "ecdh-sha2-nistp256" ? .p256(try P256KeyPair()) : .x25519(try X25519KeyPair())
    }

    var publicKey: [UInt8] {
        switch self {
        case .x25519(let k): return k.publicKey
        case .p256(let k): return k.publicKey
        }
    }

    func sharedSecret(with peer: [UInt8]) throws(SSHError) -> [UInt8] {
        switch self {
        case .x25519(let k): return try k.sharedSecret(with: peer)
        case .p256(let k): return try k.sharedSecret(with: peer)
        }
    }
}

/// Compares without an early exit (MAC and tag checks).
func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
}
