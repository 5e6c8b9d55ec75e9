import Reactor

/// Where chisel's server gets its ECDSA P-256 host key (chisel-v3-protocol.md §3.2), read the
/// same way so that the same key file, or the same seed, gives the same fingerprint.
public enum ChiselHostKey {
    public static let chiselKeyPrefix = "ck-"

    /// `--keyfile` first, then `--key`, else a fresh random key.
    public static func load(keyFile: String, seed: String) throws -> SSHServerHostKey {
        if !keyFile.isEmpty { return try fromKeyFile(keyFile) }
        if !seed.isEmpty { return try fromSeed(seed) }
        return try SSHServerHostKey.generate()
    }

    /// A `ck-` key given inline, or a file holding a `ck-` key or PEM.
    public static func fromKeyFile(_ keyFile: String) throws -> SSHServerHostKey {
        let text = keyFile.hasPrefix(chiselKeyPrefix) ? keyFile : try readSmallFile(keyFile, limit: 64 * 1024)
        let trimmed = String(text.filter { !$0.isWhitespace })
        if trimmed.hasPrefix(chiselKeyPrefix) { return try fromChiselKey(trimmed) }
        do { return try SSHServerHostKey(pem: text) } catch {
            throw TunnelServerError("--keyfile \(keyFile.hasPrefix(chiselKeyPrefix) ? "(inline)" : keyFile): \(error)")
        }
    }

    /// `ck-` and the SEC1 DER in base64 without padding (chisel `--keygen`'s output).
    public static func fromChiselKey(_ key: String) throws -> SSHServerHostKey {
        var b64 = String(key.dropFirst(chiselKeyPrefix.count))
        while b64.utf8.count % 4 != 0 { b64 += "=" }
        guard let der = Base64.decode(b64) else { throw TunnelServerError("chisel key: not valid base64 after 'ck-'") }
        do { return try SSHServerHostKey(der: der) } catch { throw TunnelServerError("chisel key: \(error)") }
    }

    /// chisel's `--key` derivation: a SHA-512 chain over the seed, strengthened 2048 times, read
    /// as a deterministic random stream; Go's ecdsa key generation takes 40 bytes of it and
    /// reduces them modulo n-1, plus one. `testseed` gives r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ=.
    public static func fromSeed(_ seed: String) throws -> SSHServerHostKey {
        var next = Array(seed.utf8)
        for _ in 0..<2048 { next = Array(SSHDigest.sha512.hash(next).prefix(32)) }
        var out: [UInt8] = []
        while out.count < 40 {
            let digest = SSHDigest.sha512.hash(next)
            next = Array(digest[0..<32])
            out += digest[32...]
        }
        return try SSHServerHostKey(reducing: Array(out[0..<40]))
    }
}

/// A whole key or user file of at most `limit` bytes, as text.
func readSmallFile(_ path: String, limit: Int) throws(TunnelServerError) -> String {
    do { return String(decoding: try SmallFile.read(path, limit: limit), as: UTF8.self) } catch {
        switch error {
        case .notFound: throw TunnelServerError("\(path): no such file")
        case .tooLarge(let l): throw TunnelServerError("\(path) is larger than \(l) bytes")
        case .system(let text): throw TunnelServerError("cannot read \(path): \(text)")
        }
    }
}

/// A tunnel server setup or runtime failure, said plainly.
public struct TunnelServerError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
