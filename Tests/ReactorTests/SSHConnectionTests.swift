import Foundation
import XCTest
@testable import Reactor

/// Connection-level failures with a fake server on the loop: clear errors, bounded waits.
final class SSHConnectionTests: XCTestCase {
    /// A TCP server that sends `greeting` to each client and ignores what it reads.
    final class FakeServer: ByteStreamDelegate {
        var listener: TCPListener?
        var conns: [TCPConnection] = []
        init(loop: EventLoop, greeting: [UInt8]) throws {
            listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { [weak self] fd, peer in
                guard let self, let c = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: self) else { return }
                self.conns.append(c)
                if !greeting.isEmpty { c.write(greeting) }
            }
        }
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
        func streamDidReadEOF(_ stream: ByteStream) {}
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
    }

    func testHandshakeTimeout() throws {
        let loop = try makeLoop()
        let server = try FakeServer(loop: loop, greeting: [])
        var config = passwordConfig()
        config.handshakeTimeout = .milliseconds(300)
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: server.listener?.port ?? 0, config: config, delegate: d)
        XCTAssertEqual(d.error, .closed("handshake did not finish within 300ms"))
    }

    func testGarbageInsteadOfBanner() throws {
        let loop = try makeLoop()
        let server = try FakeServer(loop: loop, greeting: [UInt8](repeating: 0x41, count: 70_000))
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: server.listener?.port ?? 0, config: passwordConfig(), delegate: d)
        XCTAssertEqual(d.error, .limitExceeded("no SSH identification line in the first 65536 bytes"))
    }

    func testOversizedPacketAfterBanner() throws {
        let loop = try makeLoop()
        let server = try FakeServer(loop: loop, greeting: Array("SSH-2.0-fake\r\n".utf8) + [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: server.listener?.port ?? 0, config: passwordConfig(), delegate: d)
        XCTAssertEqual(d.error, .limitExceeded("packet length 2147483647 exceeds the limit of 262144 bytes"))
    }

    func testServerDisconnectDuringKex() throws {
        let loop = try makeLoop()
        var msg: [UInt8] = [SSHMsg.disconnect]
        msg.sshUInt32(2); msg.sshString("go away"); msg.sshString("")
        var enc = SSHPacketEncoder()
        var wire = Array("SSH-2.0-fake\r\n".utf8)
        let start = enc.begin(&wire)
        wire.append(contentsOf: msg)
        try enc.finish(&wire, start: start)
        let server = try FakeServer(loop: loop, greeting: wire)
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: server.listener?.port ?? 0, config: passwordConfig(), delegate: d)
        XCTAssertEqual(d.error, .disconnected(reason: 2, text: "go away"))
    }

    func testNonKexMessageDuringInitialKexIsRefused() throws {
        let loop = try makeLoop()
        var enc = SSHPacketEncoder()
        var wire = Array("SSH-2.0-fake\r\n".utf8)
        let start = enc.begin(&wire)
        wire.append(contentsOf: [SSHMsg.globalRequest, 0, 0, 0, 1, 0x78, 0])
        try enc.finish(&wire, start: start)
        let server = try FakeServer(loop: loop, greeting: wire)
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: server.listener?.port ?? 0, config: passwordConfig(), delegate: d)
        XCTAssertEqual(d.error, .protocolError("message 80 arrived during the initial key exchange"))
    }
}
