/// The algorithms we offer, in preference order, and what each one needs.
public struct SSHAlgorithms: Sendable, Equatable {
    public static let supportedKex = ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256"]
    public static let supportedHostKeys = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
    public static let supportedCiphers = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                                          "aes128-ctr", "aes256-ctr"]
    public static let supportedMACs = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"]

    public var kex = SSHAlgorithms.supportedKex
    public var hostKeys = SSHAlgorithms.supportedHostKeys
    public var ciphers = SSHAlgorithms.supportedCiphers
    public var macs = SSHAlgorithms.supportedMACs

    public init() {}

    /// Refuses names we cannot run, so a typo fails at configuration time.
    public func validate() throws(SSHError) {
        for (list, supported, what) in [(kex, Self.supportedKex, "kex"), (hostKeys, Self.supportedHostKeys, "host key"),
                                        (ciphers, Self.supportedCiphers, "cipher"), (macs, Self.supportedMACs, "MAC")] {
            if list.isEmpty { throw SSHError.negotiation("empty \(what) list") }
            for name in list where !supported.contains(name) {
                throw SSHError.negotiation("unsupported \(what) algorithm '\(name)' (supported: \(supported.joined(separator: ", ")))")
            }
        }
    }

    static func isAEAD(_ cipher: String) -> Bool { cipher.hasSuffix("-gcm@openssh.com") || cipher == "chacha20-poly1305@openssh.com" }

    /// Key and IV lengths for a cipher name.
    static func cipherSizes(_ name: String) -> (key: Int, iv: Int) {
        switch name {
        case "aes128-ctr": return (16, 16)
        case "aes256-ctr": return (32, 16)
        case "aes128-gcm@openssh.com": return (16, 12)
        case "aes256-gcm@openssh.com": return (32, 12)
        case "chacha20-poly1305@openssh.com": return (64, 0)
        default: return (0, 0)
        }
    }

    static func macDigest(_ name: String) -> SSHDigest { name.contains("sha2-512") ? .sha512 : .sha256 }
    static func kexDigest(_ name: String) -> SSHDigest { .sha256 }

    /// Builds one direction's cipher from derived key material.
    static func makeCipher(name: String, mac: String, key: [UInt8], iv: [UInt8], macKey: [UInt8], encrypt: Bool) throws -> SSHPacketCipher {
        switch name {
        case "aes128-gcm@openssh.com", "aes256-gcm@openssh.com":
            return try SSHAESGCMCipher(key: key, iv: iv, encrypt: encrypt)
        case "chacha20-poly1305@openssh.com":
            return try SSHChaChaPolyCipher(key: key)
        case "aes128-ctr", "aes256-ctr":
            let hmac = try SSHHMAC(digest: macDigest(mac), key: macKey)
            return try SSHAESCTRCipher(key: key, iv: iv, mac: hmac, etm: mac.hasSuffix("-etm@openssh.com"), encrypt: encrypt)
        default:
            throw SSHError.negotiation("cipher '\(name)' is not implemented")
        }
    }
}

/// What both sides agreed on in one key exchange.
struct SSHNegotiated: Equatable {
    var kex: String
    var hostKey: String
    var cipherC2S: String, cipherS2C: String
    var macC2S: String, macS2C: String     // empty for AEAD ciphers
    var strictKex: Bool
    var serverSupportsExtInfo: Bool
}

/// SSH_MSG_KEXINIT (RFC 4253 section 7.1).
struct SSHKexInit: Equatable {
    var cookie: [UInt8] = Array(repeating: 0, count: 16)
    var kex: [String] = [], hostKeys: [String] = []
    var ciphersC2S: [String] = [], ciphersS2C: [String] = []
    var macsC2S: [String] = [], macsS2C: [String] = []
    var compressionC2S: [String] = ["none"], compressionS2C: [String] = ["none"]
    var languagesC2S: [String] = [], languagesS2C: [String] = []
    var firstKexFollows = false

    static let maxNameListLength = 16 * 1024

    func encode() -> [UInt8] {
        var out: [UInt8] = [SSHMsg.kexInit]
        out.append(contentsOf: cookie)
        for list in [kex, hostKeys, ciphersC2S, ciphersS2C, macsC2S, macsS2C, compressionC2S, compressionS2C, languagesC2S, languagesS2C] {
            out.sshNameList(list)
        }
        out.sshBool(firstKexFollows)
        out.sshUInt32(0)
        return out
    }

    static func parse(_ payload: UnsafeRawBufferPointer) throws(SSHError) -> SSHKexInit {
        var r = SSHReader(payload, context: "KEXINIT")
        guard try r.readByte("message") == SSHMsg.kexInit else { throw SSHError.malformed("KEXINIT: wrong message number") }
        var m = SSHKexInit()
        guard r.remaining >= 16 else { throw SSHError.malformed("KEXINIT: field 'cookie' at offset 1: needs 16 bytes, \(r.remaining) left") }
        m.cookie = Array(payload[1..<17])
        r = SSHReader(payload, context: "KEXINIT", offset: 17)
        let names = ["kex_algorithms", "server_host_key_algorithms", "encryption_algorithms_client_to_server",
                     "encryption_algorithms_server_to_client", "mac_algorithms_client_to_server", "mac_algorithms_server_to_client",
                     "compression_algorithms_client_to_server", "compression_algorithms_server_to_client",
                     "languages_client_to_server", "languages_server_to_client"]
        var lists: [[String]] = []
        for name in names {
            let start = r.offset
            let list = try r.readNameList(name)
            if r.offset - start - 4 > maxNameListLength {
                throw SSHError.limitExceeded("KEXINIT: field '\(name)' is \(r.offset - start - 4) bytes, limit \(maxNameListLength)")
            }
            lists.append(list)
        }
        m.kex = lists[0]; m.hostKeys = lists[1]; m.ciphersC2S = lists[2]; m.ciphersS2C = lists[3]
        m.macsC2S = lists[4]; m.macsS2C = lists[5]; m.compressionC2S = lists[6]; m.compressionS2C = lists[7]
        m.languagesC2S = lists[8]; m.languagesS2C = lists[9]
        m.firstKexFollows = try r.readBool("first_kex_packet_follows")
        _ = try r.readUInt32("reserved")
        return m
    }

    /// The client's first choice that the server also lists (RFC 4253 section 7.1).
    static func pick(_ field: String, client: [String], server: [String]) throws(SSHError) -> String {
        for name in client where server.contains(name) { return name }
        throw SSHError.negotiation("\(field): we offer [\(client.joined(separator: ","))], server offers [\(server.joined(separator: ","))]")
    }

    static func negotiate(client c: SSHKexInit, server s: SSHKexInit) throws(SSHError) -> SSHNegotiated {
        let kexNames = c.kex.filter { !$0.hasPrefix("ext-info-") && !$0.hasPrefix("kex-strict-") }
        let kex = try pick("kex", client: kexNames, server: s.kex)
        let hostKey = try pick("host key", client: c.hostKeys, server: s.hostKeys)
        let cC2S = try pick("cipher client->server", client: c.ciphersC2S, server: s.ciphersC2S)
        let cS2C = try pick("cipher server->client", client: c.ciphersS2C, server: s.ciphersS2C)
        let mC2S = SSHAlgorithms.isAEAD(cC2S) ? "" : try pick("MAC client->server", client: c.macsC2S, server: s.macsC2S)
        let mS2C = SSHAlgorithms.isAEAD(cS2C) ? "" : try pick("MAC server->client", client: c.macsS2C, server: s.macsS2C)
        _ = try pick("compression client->server", client: c.compressionC2S, server: s.compressionC2S)
        _ = try pick("compression server->client", client: c.compressionS2C, server: s.compressionS2C)
        return SSHNegotiated(kex: kex, hostKey: hostKey, cipherC2S: cC2S, cipherS2C: cS2C, macC2S: mC2S, macS2C: mS2C,
                             strictKex: c.kex.contains("kex-strict-c-v00@openssh.com") && s.kex.contains("kex-strict-s-v00@openssh.com"),
                             serverSupportsExtInfo: s.kex.contains("ext-info-s"))
    }
}

/// RFC 4253 section 7.2: key material from the shared secret K (already mpint-encoded) and H.
func deriveKey(digest: SSHDigest, sharedSecret k: [UInt8], exchangeHash h: [UInt8], letter: UInt8,
               sessionID: [UInt8], length: Int) -> [UInt8] {
    var out = digest.hash(k + h + [letter] + sessionID)
    while out.count < length { out += digest.hash(k + h + out) }
    return Array(out[0..<length])
}
