import CShims

/// An unencrypted OpenSSH ed25519 private key (`-----BEGIN OPENSSH PRIVATE KEY-----`,
/// PROTOCOL.key), parsed here and used for publickey authentication.
public struct SSHEd25519PrivateKey: Sendable {
    public let seed: [UInt8]          // 32 bytes
    public let publicKey: [UInt8]     // 32 bytes
    public let comment: String

    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else { throw SSHError.malformed("ed25519 seed is \(seed.count) bytes, want 32") }
        var pub = [UInt8](repeating: 0, count: 32)
        guard shim_ed25519_public(seed, &pub) == 1 else { throw SSHError.crypto("ed25519 public key derivation failed") }
        self.seed = seed
        self.publicKey = pub
        self.comment = ""
    }

    public init(openSSHText text: String) throws {
        let begin = "-----BEGIN OPENSSH PRIVATE KEY-----", end = "-----END OPENSSH PRIVATE KEY-----"
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingSpaces }
        guard let b = lines.firstIndex(of: begin), let e = lines.firstIndex(of: end), b < e else {
            throw SSHError.malformed("private key: no '\(begin)' ... '\(end)' block")
        }
        guard let raw = Base64.decode(lines[(b + 1)..<e].joined()) else {
            throw SSHError.malformed("private key: body is not valid base64")
        }
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard raw.starts(with: magic) else { throw SSHError.malformed("private key: missing 'openssh-key-v1' magic") }
        let parsed: ([UInt8], [UInt8], String) = try raw.withUnsafeBytes { buf in
            var r = SSHReader(buf, context: "private key", offset: magic.count)
            let cipher = try r.readText("ciphername")
            let kdf = try r.readText("kdfname")
            _ = try r.readString("kdfoptions")
            guard cipher == "none", kdf == "none" else {
                throw SSHError.malformed("private key is encrypted (\(cipher)/\(kdf)); only unencrypted keys are supported")
            }
            let count = try r.readUInt32("number of keys")
            guard count == 1 else { throw SSHError.malformed("private key file holds \(count) keys, want 1") }
            _ = try r.readString("public key")
            let section = try r.readString("private section")
            var p = SSHReader(section, context: "private key section")
            let c1 = try p.readUInt32("checkint1"), c2 = try p.readUInt32("checkint2")
            guard c1 == c2 else { throw SSHError.malformed("private key check integers differ (wrong passphrase or corrupt)") }
            let type = try p.readText("key type")
            guard type == "ssh-ed25519" else { throw SSHError.malformed("private key type \(type); only ssh-ed25519 is supported") }
            let pub = try p.readBytes("public key")
            let priv = try p.readBytes("private key")
            let comment = try p.readText("comment")
            guard pub.count == 32, priv.count == 64 else { throw SSHError.malformed("ed25519 key sizes \(pub.count)/\(priv.count), want 32/64") }
            return (Array(priv[0..<32]), pub, comment)
        }
        try self.init(seed: parsed.0)
        guard publicKey == parsed.1 else { throw SSHError.malformed("private key: public half does not match the seed") }
    }

    /// `string "ssh-ed25519" || string key`.
    public var publicKeyBlob: [UInt8] {
        var b: [UInt8] = []
        b.sshString("ssh-ed25519"); b.sshString(publicKey)
        return b
    }

    func signatureBlob(over message: [UInt8]) throws -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: 64)
        guard shim_ed25519_sign(seed, message, message.count, &sig) == 1 else { throw SSHError.crypto("ed25519 signing failed") }
        var b: [UInt8] = []
        b.sshString("ssh-ed25519"); b.sshString(sig)
        return b
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
