import Foundation
import Glibc
import XCTest
@testable import Reactor

/// The server side of SSH (SSHConnection with an SSHServerConfig) against our client, and its
/// host key against OpenSSL's and OpenSSH's own tools.
final class SSHServerTests: XCTestCase {
    /// Accepts TCP connections and runs the SSH server on each; checks passwords, records requests.
    final class Server: SSHConnectionDelegate {
        let loop: EventLoop
        var listener: TCPListener?
        var config: SSHServerConfig
        var connections: [SSHConnection] = []
        var authenticated: [SSHConnection] = []
        var errors: [SSHError?] = []
        var passwordsTried: [(String, String)] = []
        var globalRequests: [String] = []

        init(loop: EventLoop, config: SSHServerConfig) throws {
            self.loop = loop
            self.config = config
            listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { [unowned self] fd, peer in
                guard let tcp = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer) else { return }
                let c = SSHConnection(loop: loop, stream: tcp, serverConfig: self.config, delegate: self)
                self.connections.append(c)
                c.start()
            }
        }
        var port: Int { listener?.port ?? 0 }

        func sshConnection(_ connection: SSHConnection, authenticate user: String, password: String) -> Bool {
            passwordsTried.append((user, password))
            return user == SSHFixtures.testUser && password == SSHFixtures.testPassword
        }
        func sshConnectionDidAuthenticate(_ connection: SSHConnection) { authenticated.append(connection) }
        func sshConnection(_ connection: SSHConnection, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply? {
            globalRequests.append(name)
            return name == "config" ? SSHGlobalReply(success: true) : nil
        }
        func sshConnection(_ connection: SSHConnection, didDisconnectWith error: SSHError?) { errors.append(error) }
    }

    /// A client-side channel handler that echoes what the server sends.
    final class ChannelEcho: ByteStreamDelegate {
        var channels: [SSHChannel] = []
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { stream.write(bytes) }
        func streamDidReadEOF(_ stream: ByteStream) { stream.close(nil) }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
    }

    /// Collects what a server-side channel reads.
    final class Collector: ByteStreamDelegate {
        var received: [UInt8] = []
        var closed = false
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { received.append(contentsOf: bytes) }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { closed = true }
    }

    /// A raw TCP client that ignores what it reads.
    final class Sink: ByteStreamDelegate {
        var closed = false
        func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
        func streamDidReadEOF(_ stream: ByteStream) { closed = true }
        func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { closed = true }
    }

    private func hostKey() throws -> SSHServerHostKey { try SSHServerHostKey.generate() }

    func testEveryCipherAndKexWithAServerOpenedChannelCarryingAMebibyteEachWay() throws {
        let loop = try makeLoop()
        let key = try hostKey()
        let server = try Server(loop: loop, config: SSHServerConfig(hostKey: key))
        for (kex, cipher) in [("curve25519-sha256", "aes128-gcm@openssh.com"), ("ecdh-sha2-nistp256", "aes256-gcm@openssh.com"),
                              ("curve25519-sha256", "chacha20-poly1305@openssh.com"), ("curve25519-sha256", "aes128-ctr")] {
            var algorithms = SSHAlgorithms()
            algorithms.kex = [kex]
            algorithms.ciphers = [cipher]
            let client = RecordingSSHDelegate()
            let echo = ChannelEcho()
            client.onChannelOpen = { request in
                XCTAssertEqual(request.type, "chisel")
                XCTAssertEqual(String(decoding: request.data, as: UTF8.self), "127.0.0.1:9")
                if let c = request.accept(delegate: echo) { echo.channels.append(c) }
            }
            let conn = try sshConnect(loop: loop, port: server.port, config: passwordConfig(algorithms, fingerprint: key.publicKey.fingerprintSHA256Base64),
                                      delegate: client)
            XCTAssertTrue(client.authenticated, "\(kex) \(cipher): \(String(describing: client.error))")
            XCTAssertTrue(conn.negotiatedAlgorithms.contains(cipher), conn.negotiatedAlgorithms)
            XCTAssertTrue(loop.run(until: { server.authenticated.count == server.connections.count }, timeout: .seconds(5)))
            guard let serverSide = server.authenticated.last else { return XCTFail("server did not authenticate") }
            XCTAssertEqual(serverSide.authenticatedUser, SSHFixtures.testUser)
            XCTAssertEqual(serverSide.peerBanner, "SSH-2.0-pipeops-agent")

            let collector = Collector()
            var opened: SSHChannel?
            serverSide.openChannel(type: "chisel", data: Array("127.0.0.1:9".utf8), delegate: collector) { result in
                if case .success(let c) = result { opened = c } else { XCTFail("\(result)") }
            }
            XCTAssertTrue(loop.run(until: { opened != nil }, timeout: .seconds(5)))
            let payload = (0..<(1 << 20)).map { patternByte($0, seed: 7) }
            opened?.write(payload)
            XCTAssertTrue(loop.run(until: { collector.received.count >= payload.count }, timeout: .seconds(20)))
            XCTAssertEqual(collector.received, payload, "\(kex) \(cipher)")

            // Re-exchanges started by either side, each followed by more data.
            for (i, starter) in [conn, serverSide].enumerated() {
                starter.rekey()
                XCTAssertTrue(loop.run(until: { conn.keyExchangeCount == i + 2 && serverSide.keyExchangeCount == i + 2 }, timeout: .seconds(10)))
                collector.received = []
                opened?.write(payload)
                XCTAssertTrue(loop.run(until: { collector.received.count >= payload.count }, timeout: .seconds(20)))
                XCTAssertEqual(collector.received, payload, "after re-exchange \(i + 1)")
            }

            // A global request from the client reaches the server's delegate.
            var reply: SSHGlobalReply?
            conn.sendGlobalRequest("config", data: Array("{}".utf8)) { reply = $0 }
            XCTAssertTrue(loop.run(until: { reply != nil }, timeout: .seconds(5)))
            XCTAssertEqual(reply, SSHGlobalReply(success: true))
            conn.close()
            XCTAssertTrue(loop.run(until: { server.errors.count == server.connections.count }, timeout: .seconds(5)))
        }
        XCTAssertEqual(server.globalRequests, ["config", "config", "config", "config"])
    }

    func testAChannelRefusedByTheClientReportsItsReason() throws {
        let loop = try makeLoop()
        let server = try Server(loop: loop, config: SSHServerConfig(hostKey: try hostKey()))
        let client = RecordingSSHDelegate()
        client.onChannelOpen = { $0.reject(reason: 1, text: "Denied outbound connection") }
        let conn = try sshConnect(loop: loop, port: server.port, config: passwordConfig(), delegate: client)
        defer { conn.close() }
        XCTAssertTrue(loop.run(until: { !server.authenticated.isEmpty }, timeout: .seconds(5)))
        var result: Result<SSHChannel, SSHChannelOpenError>?
        server.authenticated[0].openChannel(type: "chisel", data: Array("10.0.0.1:22".utf8), delegate: nil) { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: .seconds(5)))
        guard case .failure(let e)? = result else { return XCTFail("opened: \(String(describing: result))") }
        XCTAssertEqual(e, .channelRefused(reason: 1, text: "Denied outbound connection"))
    }

    func testChannelLimitRefusesTheOpenBeyondIt() throws {
        let loop = try makeLoop()
        var config = SSHServerConfig(hostKey: try hostKey())
        config.maxChannels = 2
        let server = try Server(loop: loop, config: config)
        let client = RecordingSSHDelegate()
        let echo = ChannelEcho()
        client.onChannelOpen = { if let c = $0.accept(delegate: echo) { echo.channels.append(c) } }
        let conn = try sshConnect(loop: loop, port: server.port, config: passwordConfig(), delegate: client)
        defer { conn.close() }
        XCTAssertTrue(loop.run(until: { !server.authenticated.isEmpty }, timeout: .seconds(5)))
        var results: [Result<SSHChannel, SSHChannelOpenError>] = []
        for _ in 0..<3 { server.authenticated[0].openChannel(type: "chisel", delegate: nil) { results.append($0) } }
        XCTAssertTrue(loop.run(until: { results.count == 3 }, timeout: .seconds(5)))
        let failures = results.compactMap { r -> SSHChannelOpenError? in if case .failure(let e) = r { return e } else { return nil } }
        XCTAssertEqual(failures, [.limitReached(2)])
        XCTAssertEqual(server.authenticated[0].channelCount, 2)
    }

    func testWrongPasswordIsRefusedAndTheClientSaysSo() throws {
        let loop = try makeLoop()
        let server = try Server(loop: loop, config: SSHServerConfig(hostKey: try hostKey()))
        let client = RecordingSSHDelegate()
        var config = passwordConfig()
        config.credentials.password = "wrong"
        _ = try sshConnect(loop: loop, port: server.port, config: config, delegate: client)
        XCTAssertFalse(client.authenticated)
        guard case .authentication(let why)? = client.error else { return XCTFail("\(String(describing: client.error))") }
        XCTAssertTrue(why.contains("attempted methods [none password]"), why)
        XCTAssertEqual(server.passwordsTried.map(\.1), ["wrong"])
        XCTAssertTrue(server.authenticated.isEmpty)
    }

    func testOversizedPacketBeforeAuthenticationEndsTheConnection() throws {
        let loop = try makeLoop()
        let server = try Server(loop: loop, config: SSHServerConfig(hostKey: try hostKey()))
        let raw = Sink()
        let tcp = try TCPConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: server.port), timeout: .seconds(5), delegate: raw)
        // A banner, then a packet header announcing 100,000 bytes (under the general limit of 256 KiB).
        tcp.write(Array("SSH-2.0-probe\r\n".utf8) + [0, 1, 0x86, 0xa0, 4] + [UInt8](repeating: 0, count: 1000))
        XCTAssertTrue(loop.run(until: { !server.errors.isEmpty }, timeout: .seconds(5)))
        XCTAssertEqual(server.errors.first ?? nil, .limitExceeded("packet length 100000 exceeds the limit of 32768 bytes"))
        XCTAssertTrue(loop.run(until: { raw.closed }, timeout: .seconds(5)))
    }

    func testHandshakeDeadline() throws {
        let loop = try makeLoop()
        var config = SSHServerConfig(hostKey: try hostKey())
        config.handshakeTimeout = .milliseconds(300)
        let server = try Server(loop: loop, config: config)
        let raw = Sink()
        _ = try TCPConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: server.port), timeout: .seconds(5), delegate: raw)
        XCTAssertTrue(loop.run(until: { !server.errors.isEmpty }, timeout: .seconds(5)))
        XCTAssertEqual(server.errors.first ?? nil, .closed("handshake did not finish within 300ms"))
    }

    /// The same key file gives the same fingerprint here as in OpenSSH (and so in chisel, which
    /// hashes the same public key blob).
    func testHostKeyFromOpenSSLPEMHasOpenSSHsFingerprint() throws {
        let dir = NSTemporaryDirectory() + "server-key-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pem = "\(dir)/key.pem"
        let (status, out) = try runCommand("/usr/bin/openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pem])
        XCTAssertEqual(status, 0, out)
        let text = try String(contentsOfFile: pem, encoding: .utf8)
        XCTAssertTrue(text.contains("BEGIN EC PRIVATE KEY"))
        let key = try SSHServerHostKey(pem: text)
        _ = try runCommand("/bin/chmod", ["600", pem])
        let (s2, pub) = try runCommand("/usr/bin/ssh-keygen", ["-y", "-f", pem])
        XCTAssertEqual(s2, 0, pub)
        try pub.write(toFile: "\(dir)/key.pub", atomically: true, encoding: .utf8)
        let (s3, line) = try runCommand("/usr/bin/ssh-keygen", ["-l", "-E", "sha256", "-f", "\(dir)/key.pub"])
        XCTAssertEqual(s3, 0, line)
        XCTAssertTrue(line.contains(key.publicKey.fingerprintOpenSSH), "\(line) vs \(key.publicKey.fingerprintOpenSSH)")
        // PKCS#8 of the same key reads the same.
        let (s4, p8) = try runCommand("/usr/bin/openssl", ["pkcs8", "-topk8", "-nocrypt", "-in", pem])
        XCTAssertEqual(s4, 0, p8)
        XCTAssertEqual(try SSHServerHostKey(pem: p8).publicPoint, key.publicPoint)
        XCTAssertThrowsError(try SSHServerHostKey(pem: "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
        XCTAssertThrowsError(try SSHServerHostKey(pem: "no key here"))
    }

    func testReducingGivesTheSameKeyForTheSameBytes() throws {
        let a = try SSHServerHostKey(reducing: Array(repeating: 7, count: 40))
        let b = try SSHServerHostKey(reducing: Array(repeating: 7, count: 40))
        let c = try SSHServerHostKey(reducing: Array(repeating: 8, count: 40))
        XCTAssertEqual(a.publicPoint, b.publicPoint)
        XCTAssertNotEqual(a.publicPoint, c.publicPoint)
        XCTAssertEqual(a.publicKey.blob.count, 104)
    }
}
