import Foundation
import XCTest
@testable import Reactor

/// Handshakes and authentication against OpenSSH's sshd.
final class SSHInteropTests: XCTestCase {
    func testPasswordAuthDefaultAlgorithms() throws {
        let sshd = try SSHDPeer()
        defer { sshd.stop() }
        let loop = try makeLoop()
        let d = RecordingSSHDelegate()
        let conn = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(), delegate: d)
        XCTAssertTrue(d.authenticated, "error: \(String(describing: d.error)); sshd log:\n\(sshd.log)")
        XCTAssertEqual(d.warnings.count, 1, "an unchecked host key must be reported")
        XCTAssertTrue(conn.serverBanner?.hasPrefix("SSH-2.0-OpenSSH") ?? false)
        XCTAssertTrue(conn.negotiatedAlgorithms.hasPrefix("curve25519-sha256 ssh-ed25519 aes128-gcm@openssh.com"), conn.negotiatedAlgorithms)
        XCTAssertTrue(conn.negotiatedAlgorithms.hasSuffix("strict"), "strict kex not negotiated: \(conn.negotiatedAlgorithms)")
        XCTAssertTrue(sshd.log.contains("Accepted password for \(SSHFixtures.testUser)"), sshd.log)
        conn.close()
    }

    /// Every kex x host key x cipher x MAC we offer completes a handshake and authenticates.
    func testEveryAlgorithmCombination() throws {
        let sshd = try SSHDPeer()
        defer { sshd.stop() }
        let loop = try makeLoop()
        var count = 0
        for kex in SSHAlgorithms.supportedKex {
            for hostKey in SSHAlgorithms.supportedHostKeys {
                for cipher in SSHAlgorithms.supportedCiphers {
                    let macs = SSHAlgorithms.isAEAD(cipher) ? [SSHAlgorithms.supportedMACs[0]] : SSHAlgorithms.supportedMACs
                    for mac in macs {
                        var a = SSHAlgorithms()
                        a.kex = [kex]; a.hostKeys = [hostKey]; a.ciphers = [cipher]; a.macs = [mac]
                        let d = RecordingSSHDelegate()
                        let conn = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(a), delegate: d)
                        let label = "\(kex) \(hostKey) \(cipher) \(mac)"
                        XCTAssertTrue(d.authenticated, "\(label): \(String(describing: d.error))")
                        let expected = "\(kex) \(hostKey) \(cipher) \(SSHAlgorithms.isAEAD(cipher) ? "(aead)" : mac)"
                        XCTAssertTrue(conn.negotiatedAlgorithms.hasPrefix(expected), "\(label): got \(conn.negotiatedAlgorithms)")
                        // A round trip after auth: ping@openssh-style unknown request gets a failure reply.
                        var reply: SSHGlobalReply?
                        conn.sendGlobalRequest("no-such-request@pipeops", data: []) { reply = $0 }
                        XCTAssertTrue(loop.run(until: { reply != nil }, timeout: .seconds(5)), "\(label): no global reply")
                        XCTAssertEqual(reply?.success, false)
                        conn.close()
                        count += 1
                    }
                }
            }
        }
        XCTAssertEqual(count, 3 * 4 * (2 * 4 + 3))
    }

    func testPublicKeyAuth() throws {
        let sshd = try SSHDPeer(extraConfig: "PasswordAuthentication no")
        defer { sshd.stop() }
        let loop = try makeLoop()
        guard let keys = SSHTestKeys.shared else { return XCTFail("no test keys") }
        let config = SSHClientConfig(credentials: SSHCredentials(user: "root", privateKey: try keys.clientKey()))
        let d = RecordingSSHDelegate()
        let conn = try sshConnect(loop: loop, port: sshd.port, config: config, delegate: d)
        XCTAssertTrue(d.authenticated, "\(String(describing: d.error))\n\(sshd.log)")
        XCTAssertTrue(sshd.log.contains("Accepted publickey for root"), sshd.log)
        conn.close()
    }

    func testWrongPublicKeyFailsClearly() throws {
        let sshd = try SSHDPeer(extraConfig: "PasswordAuthentication no")
        defer { sshd.stop() }
        let loop = try makeLoop()
        guard let keys = SSHTestKeys.shared else { return XCTFail("no test keys") }
        let other = try SSHEd25519PrivateKey(openSSHText: String(contentsOfFile: "\(keys.dir)/other_ed25519", encoding: .utf8))
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: sshd.port, config: SSHClientConfig(credentials: SSHCredentials(user: "root", privateKey: other)), delegate: d)
        XCTAssertFalse(d.authenticated)
        XCTAssertEqual(d.error?.description.contains("unable to authenticate: attempted methods [none publickey]"), true, "\(String(describing: d.error))")
    }

    func testWrongPasswordFailsClearly() throws {
        let sshd = try SSHDPeer()
        defer { sshd.stop() }
        let loop = try makeLoop()
        var config = passwordConfig()
        config.credentials.password = "not-the-password"
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: sshd.port, config: config, delegate: d)
        XCTAssertFalse(d.authenticated)
        XCTAssertEqual(d.error?.description.contains("unable to authenticate: attempted methods [none password]"), true, "\(String(describing: d.error))")
    }

    func testHostKeyFingerprintForms() throws {
        let sshd = try SSHDPeer()
        defer { sshd.stop() }
        let loop = try makeLoop()
        guard let keys = SSHTestKeys.shared else { return XCTFail("no test keys") }
        var a = SSHAlgorithms()
        a.hostKeys = ["ecdsa-sha2-nistp256"]
        let openssh = try keys.openSSHFingerprint("host_ecdsa")   // SHA256:... from ssh-keygen
        let chisel = String(openssh.dropFirst("SHA256:".count)) + "="
        let d0 = RecordingSSHDelegate()
        let c0 = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(a), delegate: d0)
        guard let key = d0.hostKey else { return XCTFail("no host key: \(String(describing: d0.error))") }
        c0.close()
        XCTAssertEqual(key.fingerprintOpenSSH, openssh)
        XCTAssertEqual(key.fingerprintSHA256Base64, chisel)
        XCTAssertEqual(key.fingerprintSHA256Base64.count, 44)
        let md5 = String(key.fingerprintMD5.prefix(11))
        for expected in [openssh, chisel, md5] {
            let d = RecordingSSHDelegate()
            let c = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(a, fingerprint: expected), delegate: d)
            XCTAssertTrue(d.authenticated, "\(expected): \(String(describing: d.error))")
            XCTAssertEqual(d.warnings.count, 0)
            c.close()
        }
    }

    func testWrongHostKeyFailsWithActualFingerprint() throws {
        let sshd = try SSHDPeer()
        defer { sshd.stop() }
        let loop = try makeLoop()
        let wrong = "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ="
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(fingerprint: wrong), delegate: d)
        XCTAssertFalse(d.authenticated)
        guard case .hostKeyMismatch(let expected, let got)? = d.error else { return XCTFail("\(String(describing: d.error))") }
        XCTAssertEqual(expected, wrong)
        XCTAssertTrue(got != wrong && Base64.decode(got)?.count == 32, got)   // sshd's own key: base64 of its SHA-256
        XCTAssertEqual(d.error?.description, "ssh: host key fingerprint mismatch: got \(got), expected \(wrong)")
        for bad in ["SHA256:AAAA", "aa:bb:cc"] {
            let d2 = RecordingSSHDelegate()
            _ = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(fingerprint: bad), delegate: d2)
            XCTAssertFalse(d2.authenticated, bad)
        }
    }
}
