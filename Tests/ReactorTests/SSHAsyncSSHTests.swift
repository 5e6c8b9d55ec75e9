import Foundation
import Glibc
import XCTest
@testable import Reactor

/// Interop with asyncssh as a chisel-shaped server (Tests/Fixtures/ssh/asyncssh_chisel_server.py):
/// a non-2.0 banner, raw global-request reply data, and server-opened custom `chisel` channels.
final class SSHAsyncSSHTests: XCTestCase {
    private var pid: pid_t = 0
    private var outPath = ""

    override func tearDown() {
        if pid > 0 { kill(pid, SIGTERM); _ = waitForExit(pid); pid = 0 }
        unlink(outPath)
    }

    private func startServer(password: String) throws -> (port: Int, fingerprint: String) {
        outPath = NSTemporaryDirectory() + "asyncssh-\(getpid()).out"
        let script = "\(SSHFixtures.dir)/asyncssh_chisel_server.py"
        // python3 from PATH: the interpreter that has the pinned asyncssh (Tests/requirements.txt).
        pid = try spawnProcess("/usr/bin/env", ["python3", script, password], outputPath: outPath)
        for _ in 0..<200 {
            let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            var port = 0, fingerprint = ""
            for line in text.split(separator: "\n") {
                if line.hasPrefix("PORT ") { port = Int(line.dropFirst(5)) ?? 0 }
                if line.hasPrefix("FINGERPRINT ") { fingerprint = String(line.dropFirst(12)) }
            }
            if port > 0 { return (port, fingerprint) }
            if text.contains("Error") { break }
            usleep(50_000)
        }
        throw SSHError.closed("asyncssh server did not start (pip install asyncssh==2.24.1?): \((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "")")
    }

    func testChiselShapedServer() throws {
        let (port, fingerprint) = try startServer(password: "s3cret")
        let loop = try makeLoop()
        let echo = try EchoServer(loop: loop)
        defer { echo.close() }
        var config = SSHClientConfig(credentials: SSHCredentials(user: "chisel", password: "s3cret"))
        // asyncssh insists on an SSH-2.0 client banner (chisel servers do not check it).
        config.transport.expectedFingerprint = fingerprint
        let d = RecordingSSHDelegate()
        var bridges: [StreamBridge] = []
        d.onChannelOpen = { request in
            XCTAssertEqual(request.type, "chisel")
            let target = String(decoding: request.data, as: UTF8.self)
            if target == "socks" { request.reject(reason: 1, text: "SOCKS5 is not enabled"); return }
            guard let (host, port) = try? SocketAddress.splitHostPort(target), let addr = try? SocketAddress(ip: host, port: port),
                  let channel = request.accept(delegate: nil) else { return request.reject(reason: 2, text: "bad target \(target)") }
            let placeholder = EchoServer.Echo()
            guard let tcp = try? TCPConnection.connect(loop: loop, to: addr, timeout: .seconds(5), delegate: placeholder) else {
                channel.close(); return
            }
            let bridge = StreamBridge(channel, tcp)
            bridges.append(bridge)
            bridge.start()
        }
        let conn = try sshConnect(loop: loop, port: port, config: config, delegate: d)
        XCTAssertTrue(d.authenticated, "\(String(describing: d.error))")
        XCTAssertEqual(conn.serverBanner, "SSH-chisel-v3-server")
        XCTAssertEqual(conn.hostKey?.keyType, "ecdsa-sha2-nistp256")
        XCTAssertEqual(d.warnings, [])

        // A refused config: failure whose data is raw error text.
        func remote(_ localPort: String) -> [UInt8] {
            Array(#"{"Version":"0.0.0-src","Remotes":[{"LocalHost":"0.0.0.0","LocalPort":"\#(localPort)","LocalProto":"tcp","RemoteHost":"127.0.0.1","RemotePort":"\#(echo.port)","RemoteProto":"tcp","Socks":false,"Reverse":true,"Stdio":false}]}"#.utf8)
        }
        var replies: [SSHGlobalReply] = []
        conn.sendGlobalRequest("config", data: remote("1")) { replies.append($0) }
        conn.sendGlobalRequest("ping") { replies.append($0) }
        conn.sendGlobalRequest("config", data: remote("18001")) { replies.append($0) }
        XCTAssertTrue(loop.run(until: { replies.count == 3 }, timeout: .seconds(10)))
        XCTAssertEqual(replies.first, SSHGlobalReply(success: false, data: Array("server: Server cannot listen on R:1=>\(echo.port)".utf8)))
        XCTAssertEqual(replies.dropFirst().first, SSHGlobalReply(success: true, data: Array("pong".utf8)))
        XCTAssertEqual(replies.last, SSHGlobalReply(success: true, data: []))

        // The server now opens channels and reports what it saw.
        func results() -> [String] { d.globalRequests.filter { $0.0 == "result" }.map { String(decoding: $0.2, as: UTF8.self) } }
        XCTAssertTrue(loop.run(until: { results().count >= 3 || d.disconnected }, timeout: .seconds(30)), "results so far: \(results())")
        XCTAssertEqual(results(), ["socks: rejected 1 SOCKS5 is not enabled", "echo: ok 1048576", "ping: True pong"])
        XCTAssertTrue(loop.run(until: { bridges.allSatisfy { $0.isFinished } }, timeout: .seconds(10)))
        XCTAssertFalse(d.disconnected, "\(String(describing: d.error))")
        conn.close()
    }

    func testChiselServerWrongFingerprintAndPassword() throws {
        let (port, fingerprint) = try startServer(password: "right")
        let loop = try makeLoop()
        var config = SSHClientConfig(credentials: SSHCredentials(user: "u", password: "wrong"))
        config.transport.expectedFingerprint = fingerprint
        let d = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: port, config: config, delegate: d)
        XCTAssertEqual(d.error?.description.contains("attempted methods [none password]"), true, "\(String(describing: d.error))")
        config.credentials.password = "right"
        config.transport.expectedFingerprint = "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ="
        let d2 = RecordingSSHDelegate()
        _ = try sshConnect(loop: loop, port: port, config: config, delegate: d2)
        XCTAssertEqual(d2.error, .hostKeyMismatch(expected: "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ=", got: fingerprint))
    }
}
