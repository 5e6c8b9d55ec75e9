import CShims

/// One direction's packet protection, applied in place to a whole binary packet
/// (`uint32 length | byte padding | payload | padding | mac-or-tag`).
protocol SSHPacketCipher: AnyObject {
    var blockSize: Int { get }
    /// Bytes of MAC or AEAD tag after the packet.
    var tagLength: Int { get }
    /// True when the length field is outside the block alignment (EtM, GCM, ChaCha20-Poly1305).
    var lengthIsAAD: Bool { get }
    /// Bytes needed before the length is known.
    var headerLength: Int { get }
    /// Reads the packet length from the first `headerLength` bytes (decrypting them in place for CTR).
    func packetLength(seq: UInt32, header: UnsafeMutableRawBufferPointer) throws -> UInt32
    /// Checks and decrypts `packet` (length field through tag) in place.
    func open(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws
    /// Encrypts `packet` in place and writes the tag into its last `tagLength` bytes.
    func seal(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws
}

@inline(__always) func readBE32(_ p: UnsafeRawBufferPointer, _ at: Int = 0) -> UInt32 {
    UInt32(p[at]) << 24 | UInt32(p[at + 1]) << 16 | UInt32(p[at + 2]) << 8 | UInt32(p[at + 3])
}

final class SSHNoCipher: SSHPacketCipher {
    var blockSize: Int { 8 }
    var tagLength: Int { 0 }
    var lengthIsAAD: Bool { false }
    var headerLength: Int { 4 }
    func packetLength(seq: UInt32, header: UnsafeMutableRawBufferPointer) throws -> UInt32 { readBE32(UnsafeRawBufferPointer(header)) }
    func open(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {}
    func seal(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {}
}

/// HMAC-SHA2 keyed once (hmac-sha2-256/512, optionally encrypt-then-MAC).
final class SSHHMAC {
    private let ctx: OpaquePointer
    let length: Int

    init(digest: SSHDigest, key: [UInt8]) throws {
        guard let c = shim_hmac_new(digest == .sha512 ? "SHA512" : "SHA256", key, key.count) else {
            throw SSHError.crypto("HMAC setup failed")
        }
        ctx = c
        length = digest.length
    }
    deinit { shim_mac_free(ctx) }

    func compute(seq: UInt32, _ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws {
        guard shim_hmac_seq(ctx, seq, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count,
                            out.baseAddress?.assumingMemoryBound(to: UInt8.self), length) == 1 else {
            throw SSHError.crypto("HMAC computation failed")
        }
    }
}

/// aes128-ctr / aes256-ctr with hmac-sha2-256/512 (plain or -etm@openssh.com).
final class SSHAESCTRCipher: SSHPacketCipher {
    private let ctx: OpaquePointer
    private let mac: SSHHMAC
    private let etm: Bool
    private var macScratch = [UInt8](repeating: 0, count: 64)

    init(key: [UInt8], iv: [UInt8], mac: SSHHMAC, etm: Bool, encrypt: Bool) throws {
        guard let c = shim_cipher_new(1, key, key.count, iv, encrypt ? 1 : 0) else { throw SSHError.crypto("AES-CTR setup failed") }
        ctx = c
        self.mac = mac
        self.etm = etm
    }
    deinit { shim_cipher_free(ctx) }

    var blockSize: Int { 16 }
    var tagLength: Int { mac.length }
    var lengthIsAAD: Bool { etm }
    var headerLength: Int { etm ? 4 : 16 }

    private func crypt(_ p: UnsafeMutableRawBufferPointer) throws {
        guard shim_cipher_update(ctx, p.baseAddress?.assumingMemoryBound(to: UInt8.self), p.count) == 1 else {
            throw SSHError.crypto("AES-CTR failed")
        }
    }

    func packetLength(seq: UInt32, header: UnsafeMutableRawBufferPointer) throws -> UInt32 {
        if !etm { try crypt(UnsafeMutableRawBufferPointer(rebasing: header[0..<16])) }
        return readBE32(UnsafeRawBufferPointer(header))
    }

    func open(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {
        let end = packet.count - mac.length
        let body = UnsafeRawBufferPointer(rebasing: packet[0..<end])
        try macScratch.withUnsafeMutableBytes { computed in
            if etm {
                try mac.compute(seq: seq, body, into: computed)
                guard constantTimeEqual(UnsafeRawBufferPointer(rebasing: computed[0..<mac.length]), UnsafeRawBufferPointer(rebasing: packet[end...])) else {
                    throw SSHError.crypto("MAC check failed on packet \(seq)")
                }
                try crypt(UnsafeMutableRawBufferPointer(rebasing: packet[4..<end]))
            } else {
                try crypt(UnsafeMutableRawBufferPointer(rebasing: packet[16..<end]))
                try mac.compute(seq: seq, body, into: computed)
                guard constantTimeEqual(UnsafeRawBufferPointer(rebasing: computed[0..<mac.length]), UnsafeRawBufferPointer(rebasing: packet[end...])) else {
                    throw SSHError.crypto("MAC check failed on packet \(seq)")
                }
            }
        }
    }

    func seal(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {
        let end = packet.count - mac.length
        let tag = UnsafeMutableRawBufferPointer(rebasing: packet[end...])
        if etm {
            try crypt(UnsafeMutableRawBufferPointer(rebasing: packet[4..<end]))
            try mac.compute(seq: seq, UnsafeRawBufferPointer(rebasing: packet[0..<end]), into: tag)
        } else {
            try mac.compute(seq: seq, UnsafeRawBufferPointer(rebasing: packet[0..<end]), into: tag)
            try crypt(UnsafeMutableRawBufferPointer(rebasing: packet[0..<end]))
        }
    }
}

/// aes128-gcm@openssh.com / aes256-gcm@openssh.com (RFC 5647 with OpenSSH's naming): the length
/// is additional data, the 12-byte nonce is a 4-byte fixed part and a 64-bit packet counter.
final class SSHAESGCMCipher: SSHPacketCipher {
    private let ctx: OpaquePointer
    private var nonce: [UInt8]
    private let encrypt: Bool

    init(key: [UInt8], iv: [UInt8], encrypt: Bool) throws {
        guard iv.count == 12, let c = shim_cipher_new(2, key, key.count, nil, encrypt ? 1 : 0) else {
            throw SSHError.crypto("AES-GCM setup failed")
        }
        ctx = c
        nonce = iv
        self.encrypt = encrypt
    }
    deinit { shim_cipher_free(ctx) }

    var blockSize: Int { 16 }
    var tagLength: Int { 16 }
    var lengthIsAAD: Bool { true }
    var headerLength: Int { 4 }

    func packetLength(seq: UInt32, header: UnsafeMutableRawBufferPointer) throws -> UInt32 { readBE32(UnsafeRawBufferPointer(header)) }

    private func bumpNonce() {
        var i = 11
        while i >= 4 {
            nonce[i] &+= 1
            if nonce[i] != 0 { break }
            i -= 1
        }
    }

    func open(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {
        let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let end = packet.count - 16
        guard shim_gcm_open(ctx, nonce, base, 4, base + 4, end - 4, base + end) == 1 else {
            throw SSHError.crypto("AES-GCM tag check failed on packet \(seq)")
        }
        bumpNonce()
    }

    func seal(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {
        let base = packet.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let end = packet.count - 16
        guard shim_gcm_seal(ctx, nonce, base, 4, base + 4, end - 4, base + end) == 1 else {
            throw SSHError.crypto("AES-GCM encryption failed")
        }
        bumpNonce()
    }
}

/// chacha20-poly1305@openssh.com (OpenSSH PROTOCOL.chacha20poly1305): 64 bytes of key; the
/// second 32 (K_1) encrypt the length, the first 32 (K_2) the packet; the Poly1305 key is
/// K_2's keystream block 0; the nonce is the sequence number. OpenSSL's ChaCha20 takes a
/// 16-byte IV (block counter | nonce), which maps onto the original 64/64-bit layout.
final class SSHChaChaPolyCipher: SSHPacketCipher {
    private let main: OpaquePointer     // K_2
    private let header: OpaquePointer   // K_1
    private let poly: OpaquePointer
    private var iv = [UInt8](repeating: 0, count: 16)
    private var polyKey = [UInt8](repeating: 0, count: 32)
    private var tag = [UInt8](repeating: 0, count: 16)
    private var lengthBytes = [UInt8](repeating: 0, count: 4)

    init(key: [UInt8]) throws {
        guard key.count == 64,
              let m = shim_cipher_new(3, Array(key[0..<32]), 32, nil, 1),
              let h = shim_cipher_new(3, Array(key[32..<64]), 32, nil, 1),
              let p = shim_poly1305_new() else { throw SSHError.crypto("ChaCha20-Poly1305 setup failed") }
        main = m; header = h; poly = p
    }
    deinit { shim_cipher_free(main); shim_cipher_free(header); shim_mac_free(poly) }

    var blockSize: Int { 8 }
    var tagLength: Int { 16 }
    var lengthIsAAD: Bool { true }
    var headerLength: Int { 4 }

    private func setIV(seq: UInt32, counter: UInt8) {
        for i in 0..<16 { iv[i] = 0 }
        iv[0] = counter
        iv[12] = UInt8(seq >> 24); iv[13] = UInt8(truncatingIfNeeded: seq >> 16)
        iv[14] = UInt8(truncatingIfNeeded: seq >> 8); iv[15] = UInt8(truncatingIfNeeded: seq)
    }

    private func xor(_ ctx: OpaquePointer, seq: UInt32, counter: UInt8, _ p: UnsafeMutableRawBufferPointer) throws {
        setIV(seq: seq, counter: counter)
        guard shim_chacha_xor(ctx, iv, p.baseAddress?.assumingMemoryBound(to: UInt8.self), p.count) == 1 else {
            throw SSHError.crypto("ChaCha20 failed")
        }
    }

    private func computeTag(seq: UInt32, _ data: UnsafeRawBufferPointer) throws {
        for i in 0..<32 { polyKey[i] = 0 }
        try polyKey.withUnsafeMutableBytes { try xor(main, seq: seq, counter: 0, $0) }
        guard shim_poly1305(poly, polyKey, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, &tag) == 1 else {
            throw SSHError.crypto("Poly1305 failed")
        }
    }

    func packetLength(seq: UInt32, header h: UnsafeMutableRawBufferPointer) throws -> UInt32 {
        for i in 0..<4 { lengthBytes[i] = h[i] }
        try lengthBytes.withUnsafeMutableBytes { try xor(header, seq: seq, counter: 0, $0) }
        return lengthBytes.withUnsafeBytes { readBE32($0) }
    }

    func open(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {
        let end = packet.count - 16
        try computeTag(seq: seq, UnsafeRawBufferPointer(rebasing: packet[0..<end]))
        let ok = tag.withUnsafeBytes { constantTimeEqual($0, UnsafeRawBufferPointer(rebasing: packet[end...])) }
        guard ok else { throw SSHError.crypto("Poly1305 tag check failed on packet \(seq)") }
        try xor(header, seq: seq, counter: 0, UnsafeMutableRawBufferPointer(rebasing: packet[0..<4]))
        try xor(main, seq: seq, counter: 1, UnsafeMutableRawBufferPointer(rebasing: packet[4..<end]))
    }

    func seal(seq: UInt32, packet: UnsafeMutableRawBufferPointer) throws {
        let end = packet.count - 16
        try xor(header, seq: seq, counter: 0, UnsafeMutableRawBufferPointer(rebasing: packet[0..<4]))
        try xor(main, seq: seq, counter: 1, UnsafeMutableRawBufferPointer(rebasing: packet[4..<end]))
        try computeTag(seq: seq, UnsafeRawBufferPointer(rebasing: packet[0..<end]))
        for i in 0..<16 { packet[end + i] = tag[i] }
    }
}
