import XCTest
@testable import Reactor

/// Packet framing round trips for every cipher, limits, negotiation tables and banners.
final class SSHPacketTests: XCTestCase {
    private func cipherPair(_ name: String, mac: String) throws -> (SSHPacketCipher, SSHPacketCipher) {
        let sizes = SSHAlgorithms.cipherSizes(name)
        let key = (0..<sizes.key).map { UInt8($0 &* 3) }, iv = (0..<sizes.iv).map { UInt8($0 &+ 100) }
        let macKey = [UInt8](repeating: 9, count: 64)
        return (try SSHAlgorithms.makeCipher(name: name, mac: mac, key: key, iv: iv, macKey: macKey, encrypt: true),
                try SSHAlgorithms.makeCipher(name: name, mac: mac, key: key, iv: iv, macKey: macKey, encrypt: false))
    }

    func testRoundTripEveryCipher() throws {
        var combos: [(String, String)] = [("none", "")]
        for c in SSHAlgorithms.supportedCiphers {
            for m in SSHAlgorithms.isAEAD(c) ? [""] : SSHAlgorithms.supportedMACs { combos.append((c, m)) }
        }
        for (c, m) in combos {
            var enc = SSHPacketEncoder()
            let dec = SSHPacketDecoder()
            if c != "none" { (enc.cipher, dec.cipher) = try cipherPair(c, mac: m) }
            var wire: [UInt8] = []
            let payloads: [[UInt8]] = (0..<40).map { n in (0..<(n * 37 % 1500)).map { UInt8(truncatingIfNeeded: $0 &+ n) } } + [[SSHMsg.ignore]]
            for p in payloads {
                let start = enc.begin(&wire)
                wire.append(contentsOf: p)
                try enc.finish(&wire, start: start)
            }
            // Feed in odd-sized pieces.
            var got: [[UInt8]] = []
            var offset = 0
            while offset < wire.count {
                let n = min(7 + offset % 13, wire.count - offset)
                wire.withUnsafeBytes { dec.append(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
                offset += n
                while try dec.next({ got.append(Array($0)) }) {}
            }
            XCTAssertEqual(got, payloads, "\(c) \(m)")
            XCTAssertEqual(dec.sequence, UInt32(payloads.count))
            XCTAssertEqual(dec.bufferedBytes, 0)
        }
    }

    /// Reads straight into the decoder's buffer, in odd sizes: payloads of one read stay valid
    /// (in place) until the next read, and a packet bigger than the buffer makes it grow.
    func testReadingIntoTheDecoderEveryCipher() throws {
        for (c, m) in [("none", ""), ("aes128-gcm@openssh.com", ""), ("chacha20-poly1305@openssh.com", ""),
                       ("aes128-ctr", "hmac-sha2-256"), ("aes256-ctr", "hmac-sha2-512-etm@openssh.com")] {
            var enc = SSHPacketEncoder()
            let dec = SSHPacketDecoder()
            dec.maxPacketLength = 600 * 1024
            if c != "none" { (enc.cipher, dec.cipher) = try cipherPair(c, mac: m) }
            var wire: [UInt8] = []
            var payloads: [[UInt8]] = (0..<60).map { n in makePattern(count: 1 + n * 997 % 40000, seed: n) }
            payloads.insert(makePattern(count: 300 * 1024, seed: 99), at: 30)   // more than the default capacity
            for p in payloads {
                let start = enc.begin(&wire)
                wire.append(contentsOf: p)
                try enc.finish(&wire, start: start)
            }
            var got: [[UInt8]] = []
            var offset = 0, step = 0
            while offset < wire.count {
                let space = dec.readSpace()
                XCTAssertFalse(space.isEmpty)
                let n = min(space.count, [1, 5, 4096, 70_000, 300_000][step % 5], wire.count - offset)
                step += 1
                wire.withUnsafeBytes { space.baseAddress?.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
                dec.didRead(n)
                offset += n
                var views: [UnsafeRawBufferPointer] = []
                while try dec.next({ views.append($0) }) {}
                got.append(contentsOf: views.map { Array($0) })   // still intact after the whole read
            }
            XCTAssertEqual(got.count, payloads.count, "\(c) \(m)")
            XCTAssertTrue(got == payloads, "\(c) \(m)")
            XCTAssertEqual(dec.bufferedBytes, 0)
        }
    }

    /// Decoding in place from pieces the caller owns (a WebSocket read's messages): every
    /// packet cut between pieces at odd places still decodes, payloads of whole packets point
    /// into the pieces themselves (no copy), and an unfinished packet waits in the buffer.
    func testDecodingInPlaceFromPiecesEveryCipher() throws {
        for (c, m) in [("none", ""), ("aes128-gcm@openssh.com", ""), ("chacha20-poly1305@openssh.com", ""),
                       ("aes128-ctr", "hmac-sha2-256"), ("aes256-ctr", "hmac-sha2-512-etm@openssh.com")] {
            var enc = SSHPacketEncoder()
            let dec = SSHPacketDecoder()
            if c != "none" { (enc.cipher, dec.cipher) = try cipherPair(c, mac: m) }
            var wire: [UInt8] = []
            let payloads: [[UInt8]] = (0..<80).map { n in makePattern(count: 1 + n * 1499 % 33000, seed: n) }
            for p in payloads {
                let start = enc.begin(&wire)
                wire.append(contentsOf: p)
                try enc.finish(&wire, start: start)
            }
            var got: [[UInt8]] = []
            var inPiece = 0
            var offset = 0, step = 0
            while offset < wire.count {
                // A "read" of up to three pieces of odd sizes, in memory we own.
                var pieces: [[UInt8]] = []
                for _ in 0..<(1 + step % 3) where offset < wire.count {
                    let n = min([3, 65_528, 17, 40_000, 1, 100_000][step % 6], wire.count - offset)
                    pieces.append(Array(wire[offset..<offset + n]))
                    offset += n
                    step += 1
                }
                // As the session does: the buffer pinned for the read, and the payloads read
                // only once every piece is decoded (they must all still be intact then).
                var views: [UnsafeRawBufferPointer] = []
                dec.input.pin()
                try withExtendedLifetime(pieces) {
                    for i in pieces.indices {
                        try pieces[i].withUnsafeMutableBytes { piece in
                            try dec.receive(inPlace: piece) { payload, seq in
                                XCTAssertEqual(seq, UInt32(got.count + views.count))
                                if let at = payload.baseAddress, at >= UnsafeRawPointer(piece.baseAddress!),
                                   at < UnsafeRawPointer(piece.baseAddress! + piece.count) { inPiece += 1 }
                                views.append(payload)
                            }
                        }
                    }
                    got.append(contentsOf: views.map { Array($0) })
                }
                dec.input.unpin()
            }
            XCTAssertTrue(got == payloads, "\(c) \(m): \(got.count) of \(payloads.count) payloads")
            XCTAssertEqual(dec.sequence, UInt32(payloads.count))
            XCTAssertEqual(dec.bufferedBytes, 0)
            XCTAssertGreaterThan(inPiece, payloads.count / 3, "\(c) \(m): whole packets are decoded where they lie")
        }
    }

    func testTamperedPacketFails() throws {
        for (c, m) in [("aes128-gcm@openssh.com", ""), ("aes256-ctr", "hmac-sha2-256"), ("aes128-ctr", "hmac-sha2-512-etm@openssh.com"),
                       ("chacha20-poly1305@openssh.com", "")] {
            var enc = SSHPacketEncoder()
            let dec = SSHPacketDecoder()
            (enc.cipher, dec.cipher) = try cipherPair(c, mac: m)
            var wire: [UInt8] = []
            let start = enc.begin(&wire)
            wire.append(contentsOf: Array("hello world, this is a payload".utf8))
            try enc.finish(&wire, start: start)
            wire[wire.count - 20] ^= 0x40
            wire.withUnsafeBytes { dec.append($0) }
            XCTAssertThrowsError(try dec.next { _ in }, "\(c) \(m)") { e in
                XCTAssertTrue("\(e)".contains("failed"), "\(e)")
            }
        }
    }

    func testLengthLimitsAndPadding() throws {
        let dec = SSHPacketDecoder()
        ([0x00, 0x04, 0x10, 0x00, 0x04] as [UInt8]).withUnsafeBytes { dec.append($0) }   // 266240 > 256 KiB
        XCTAssertThrowsError(try dec.next { _ in }) { e in
            XCTAssertEqual("\(e)", "ssh: limit exceeded: packet length 266240 exceeds the limit of 262144 bytes")
        }
        let dec2 = SSHPacketDecoder()
        ([0, 0, 0, 12, 2] + [UInt8](repeating: 0, count: 11)).withUnsafeBytes { dec2.append($0) }
        XCTAssertThrowsError(try dec2.next { _ in }) { e in XCTAssertTrue("\(e)".contains("padding length 2"), "\(e)") }
        let dec3 = SSHPacketDecoder()
        ([0, 0, 0, 13] + [UInt8](repeating: 4, count: 13)).withUnsafeBytes { dec3.append($0) }
        XCTAssertThrowsError(try dec3.next { _ in }) { e in XCTAssertTrue("\(e)".contains("block size 8"), "\(e)") }
    }

    func testWireReaderErrorsNameFieldAndOffset() throws {
        let bytes: [UInt8] = [0, 0, 0, 9, 65, 66]
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Void in
            var r = SSHReader(raw, context: "TEST")
            XCTAssertThrowsError(try r.readString("name")) { e in
                XCTAssertEqual("\(e)", "ssh: malformed message: TEST: field 'name' at offset 0: string length 9 exceeds the 2 bytes left")
            }
        }
        var mp: [UInt8] = []
        mp.sshMPInt([0x00, 0x80, 0x01])
        XCTAssertEqual(mp, [0, 0, 0, 3, 0, 0x80, 1])
        mp = []; mp.sshMPInt([0x00, 0x00])
        XCTAssertEqual(mp, [0, 0, 0, 0])
        mp = []; mp.sshMPInt([0x7f])
        XCTAssertEqual(mp, [0, 0, 0, 1, 0x7f])
    }

    func testNegotiationTables() throws {
        var client = SSHKexInit()
        client.kex = ["curve25519-sha256", "ecdh-sha2-nistp256", "ext-info-c", "kex-strict-c-v00@openssh.com"]
        client.hostKeys = SSHAlgorithms.supportedHostKeys
        client.ciphersC2S = SSHAlgorithms.supportedCiphers; client.ciphersS2C = SSHAlgorithms.supportedCiphers
        client.macsC2S = SSHAlgorithms.supportedMACs; client.macsS2C = SSHAlgorithms.supportedMACs
        // chisel's server (x/crypto) lists.
        var server = SSHKexInit()
        server.kex = ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "kex-strict-s-v00@openssh.com"]
        server.hostKeys = ["ecdsa-sha2-nistp256"]
        server.ciphersC2S = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr"]
        server.ciphersS2C = ["aes256-ctr"]
        server.macsC2S = ["hmac-sha1"]; server.macsS2C = ["hmac-sha1", "hmac-sha2-512"]
        let n = try SSHKexInit.negotiate(client: client, server: server)
        XCTAssertEqual(n, SSHNegotiated(kex: "curve25519-sha256", hostKey: "ecdsa-sha2-nistp256", cipherC2S: "aes128-gcm@openssh.com",
                                        cipherS2C: "aes256-ctr", macC2S: "", macS2C: "hmac-sha2-512", strictKex: true, serverSupportsExtInfo: false))
        server.kex = ["diffie-hellman-group14-sha1"]
        XCTAssertThrowsError(try SSHKexInit.negotiate(client: client, server: server)) { e in
            XCTAssertTrue("\(e)".hasPrefix("ssh: no common algorithm: kex: we offer [curve25519-sha256,ecdh-sha2-nistp256]"), "\(e)")
        }
        // KEXINIT encodes and parses back.
        let bytes = client.encode()
        let parsed = try bytes.withUnsafeBytes { try SSHKexInit.parse($0) }
        XCTAssertEqual(parsed, client)
        var bad = SSHAlgorithms(); bad.ciphers = ["3des-cbc"]
        XCTAssertThrowsError(try bad.validate())
    }

    func testBannerSkipsPreambleAndAcceptsChisel() throws {
        let t = SSHTransport(config: SSHTransportConfig())
        let input = Array("hello there\r\nsecond line\nSSH-chisel-v3-server\r\n".utf8)
        try input.withUnsafeBytes { try t.receive($0) }
        XCTAssertEqual(t.peerBanner, "SSH-chisel-v3-server")
        let t1 = SSHTransport(config: SSHTransportConfig())
        XCTAssertThrowsError(try Array("SSH-1.5-old\r\n".utf8).withUnsafeBytes { try t1.receive($0) })
        var small = SSHTransportConfig(); small.maxPreBannerBytes = 100
        let t2 = SSHTransport(config: small)
        XCTAssertThrowsError(try [UInt8](repeating: 65, count: 200).withUnsafeBytes { try t2.receive($0) }) { e in
            XCTAssertTrue("\(e)".contains("no SSH identification line in the first 100 bytes"), "\(e)")
        }
        let t3 = SSHTransport(config: SSHTransportConfig())
        try t3.start()
        XCTAssertTrue(t3.output.starts(with: Array("SSH-2.0-pipeops-agent\r\n".utf8)))
    }
}
