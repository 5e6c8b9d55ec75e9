import CShims
import XCTest
@testable import Reactor

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16) ?? 0)
        i = j
    }
    return out
}

func hexString(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

/// Published vectors for the primitives, and the OpenSSH chacha20-poly1305 construction
/// against a packet sealed by asyncssh (the `cryptography` package), an independent implementation.
final class SSHCryptoTests: XCTestCase {
    func testX25519RFC7748() throws {
        // Section 5.2, first vector.
        let out = try X25519KeyPair.agree(hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                                          hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))
        XCTAssertEqual(hexString(out), "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
        // Section 6.1, Diffie-Hellman.
        let alice = try X25519KeyPair(privateKey: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        XCTAssertEqual(hexString(alice.publicKey), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        let bob = try X25519KeyPair(privateKey: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        XCTAssertEqual(hexString(bob.publicKey), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        XCTAssertEqual(hexString(try alice.sharedSecret(with: bob.publicKey)), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        XCTAssertEqual(try bob.sharedSecret(with: alice.publicKey), try alice.sharedSecret(with: bob.publicKey))
        // A low-order point gives an all-zero secret, which must be refused.
        XCTAssertThrowsError(try alice.sharedSecret(with: [UInt8](repeating: 0, count: 32)))
    }

    func testChaCha20RFC8439() throws {
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        guard let ctx = shim_cipher_new(3, Array(0..<32), 32, nil, 1) else { return XCTFail("no chacha") }
        defer { shim_cipher_free(ctx) }
        var buf = plaintext
        let iv: [UInt8] = [1, 0, 0, 0] + hex("000000000000004a00000000")
        XCTAssertEqual(shim_chacha_xor(ctx, iv, &buf, buf.count), 1)
        XCTAssertEqual(hexString(buf), "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d")
    }

    func testPoly1305RFC8439() throws {
        guard let ctx = shim_poly1305_new() else { return XCTFail("no poly1305") }
        defer { shim_mac_free(ctx) }
        let msg = Array("Cryptographic Forum Research Group".utf8)
        var tag = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(shim_poly1305(ctx, hex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"), msg, msg.count, &tag), 1)
        XCTAssertEqual(hexString(tag), "a8061dc1305136c6c22b8baf0c0127a9")
    }

    /// Packet 7, key bytes 0...63, sealed by asyncssh's ChachaCipher.
    func testOpenSSHChaChaPolyKnownPacket() throws {
        let plain = hex("00000018" + "095e000000070000000568656c6c6fa0a1a2a3a4a5a6a7a8")
        let sealed = hex("a39afcb2211815434e842a5e6c68d395bbe3bc8c95109392db459a2bc16f1243eeee57d9526296899af4b56e")
        let opener = try SSHChaChaPolyCipher(key: Array(0..<64))
        var buf = sealed
        let length = try buf.withUnsafeMutableBytes { try opener.packetLength(seq: 7, header: UnsafeMutableRawBufferPointer(rebasing: $0[0..<4])) }
        XCTAssertEqual(length, 0x18)
        try buf.withUnsafeMutableBytes { try opener.open(seq: 7, packet: $0) }
        XCTAssertEqual(Array(buf[0..<plain.count]), plain)
        // Sealing the same plaintext gives the same bytes.
        let sealer = try SSHChaChaPolyCipher(key: Array(0..<64))
        var out = plain + [UInt8](repeating: 0, count: 16)
        try out.withUnsafeMutableBytes { try sealer.seal(seq: 7, packet: $0) }
        XCTAssertEqual(out, sealed)
        // One flipped bit fails the tag.
        var bad = sealed
        bad[10] ^= 1
        XCTAssertThrowsError(try bad.withUnsafeMutableBytes { try opener.open(seq: 7, packet: $0) })
        XCTAssertThrowsError(try sealed.withUnsafeBytes { raw -> Void in
            var copy = Array(raw)
            try copy.withUnsafeMutableBytes { try opener.open(seq: 8, packet: $0) }
        }, "a wrong sequence number must fail")
    }

    func testBase64AndFingerprints() throws {
        XCTAssertEqual(Base64.encode(Array("hello".utf8)), "aGVsbG8=")
        XCTAssertEqual(Base64.decode("aGVsbG8="), Array("hello".utf8))
        XCTAssertEqual(Base64.decode("aGVsbG8h"), Array("hello!".utf8))
        XCTAssertNil(Base64.decode("aGVsbG8"))
        XCTAssertNil(Base64.decode("ed:bc:d4"))
        var blob: [UInt8] = []
        blob.sshString("ssh-ed25519"); blob.sshString([UInt8](repeating: 7, count: 32))
        let key = try SSHHostKey(blob: blob)
        XCTAssertEqual(key.keyType, "ssh-ed25519")
        XCTAssertEqual(key.fingerprintSHA256Base64.count, 44)
        XCTAssertTrue(key.fingerprintSHA256Base64.hasSuffix("="))
        XCTAssertEqual(key.fingerprintOpenSSH, "SHA256:" + key.fingerprintSHA256Base64.dropLast())
        XCTAssertEqual(key.fingerprintMD5.count, 47)
        XCTAssertTrue(key.matches(fingerprint: ""))
        XCTAssertTrue(key.matches(fingerprint: key.fingerprintSHA256Base64))
        XCTAssertTrue(key.matches(fingerprint: key.fingerprintOpenSSH))
        XCTAssertTrue(key.matches(fingerprint: String(key.fingerprintMD5.prefix(5))))
        XCTAssertTrue(key.matches(fingerprint: key.fingerprintMD5.uppercased()))
        XCTAssertFalse(key.matches(fingerprint: "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ="))
        XCTAssertFalse(key.matches(fingerprint: "00:11"))
    }

    func testOpenSSHPrivateKeyParse() throws {
        // ssh-keygen -t ed25519 output; the seed and public key are checked against each other.
        guard let keys = SSHTestKeys.shared else { return XCTFail("ssh-keygen unavailable") }
        let key = try keys.clientKey()
        XCTAssertEqual(key.publicKey.count, 32)
        let pubLine = try String(contentsOfFile: "\(keys.dir)/client_ed25519.pub", encoding: .utf8)
        XCTAssertEqual(String(pubLine.split(separator: " ")[1]), Base64.encode(key.publicKeyBlob))
        XCTAssertThrowsError(try SSHEd25519PrivateKey(openSSHText: "not a key"))
        XCTAssertThrowsError(try SSHEd25519PrivateKey(openSSHText: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"))
    }
}
