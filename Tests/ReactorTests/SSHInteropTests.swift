import Foundation
import XCTest
@testable import Reactor

/// Handshakes and authentication against OpenSSH's sshd.
final class SSHInteropTests: XCTestCase {
    func testPasswordAuthDefaultAlgorithms() throws {
        let sshd = try SSHDPeer()
        defer { sshd.stop() }
        let loop = try EventLoop()
        let d = RecordingSSHDelegate()
        let conn = try sshConnect(loop: loop, port: sshd.port, config: passwordConfig(), delegate: d)
        XCTAssertTrue(d.authenticated, "error: \(String(describing: d.error)); sshd log:\n\(sshd.log)")
        XCTAssertEqual(d.warnings.count, 1)
        XCTAssertTrue(conn.serverBanner?.hasPrefix("SSH-2.0-OpenSSH") ?? false)
        conn.close()
    }
}
