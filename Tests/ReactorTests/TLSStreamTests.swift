import CShims
import Foundation
import Glibc
import XCTest
@testable import Reactor

/// TLSStream against real peers on 127.0.0.1: openssl s_server / s_client and our own server.
final class TLSStreamTests: XCTestCase {
    private var pki: TLSTestPKI!

    override func setUpWithError() throws {
        pki = try TLSTestPKI.make()
    }

    override func tearDown() {
        pki?.remove()
    }

    private func localhost(_ port: Int) throws -> SocketAddress { try SocketAddress(ip: "127.0.0.1", port: port) }

    private func echoServer(_ loop: EventLoop, cert: String? = nil, key: String? = nil,
                            configure: (inout TLSConfiguration) -> Void = { _ in }) throws -> TLSEchoServer {
        var config = TLSConfiguration.server(certificateChainFile: cert ?? pki.serverCert,
                                             privateKeyFile: key ?? pki.serverKey, alpn: ["http/1.1"])
        configure(&config)
        return try TLSEchoServer(loop: loop, context: TLSContext(config))
    }

    /// Connects our client, runs until it opens or closes, and returns the recorder.
    private func connect(_ loop: EventLoop, to address: SocketAddress, serverName: String?,
                         _ config: TLSConfiguration) throws -> (TLSStream, StreamRecorder) {
        let recorder = StreamRecorder()
        let stream = try TLSStream.connect(loop: loop, to: address, serverName: serverName,
                                           context: TLSContext(config), timeout: .seconds(10), delegate: recorder)
        XCTAssertTrue(loop.run(until: { recorder.opened || recorder.closed }, timeout: .seconds(15)))
        return (stream, recorder)
    }

    // MARK: Interop with the openssl CLI

    func testOurClientAgainstOpenSSLServer() throws {
        let loop = try makeLoop()
        let port = try freeLocalPort()
        let server = try OpenSSLPeer.server(port: port, workDir: pki.dir,
                                            ["-cert", pki.serverCert, "-key", pki.serverKey, "-www", "-alpn", "http/1.1"])
        defer { server.stop() }

        let (stream, recorder) = try connect(loop, to: localhost(port), serverName: "localhost",
                                             .client(alpn: ["h2", "http/1.1"], additionalCAFile: pki.ca))
        XCTAssertTrue(recorder.opened, "handshake failed: \(String(describing: recorder.closeError))")
        XCTAssertEqual(stream.protocolVersion, .tls13)
        XCTAssertEqual(stream.alpnProtocol, "http/1.1")

        stream.write("GET / HTTP/1.0\r\n\r\n")
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(15)))
        XCTAssertTrue(recorder.text.hasPrefix("HTTP/1.0 200 ok"), recorder.text)
        XCTAssertTrue(recorder.text.contains("TLSv1.3"), "s_server's status page names the protocol")
        XCTAssertTrue(recorder.eof, "the server's close reaches us as EOF")
        XCTAssertNil(recorder.closeError)
    }

    func testOpenSSLClientAgainstOurServer() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop)
        defer { server.close() }

        let client = try OpenSSLPeer(["s_client", "-connect", "127.0.0.1:\(server.address.port)", "-servername", "localhost",
                                      "-CAfile", pki.ca, "-verify_return_error", "-alpn", "http/1.1", "-brief", "-ign_eof"],
                                     workDir: pki.dir)
        defer { client.stop() }
        client.send("ping through TLS\n")
        XCTAssertTrue(loop.runPolling(until: { client.output.contains("ping through TLS") || !client.process.isRunning },
                               timeout: .seconds(15)), "no echo; s_client said: \(client.errors)")
        XCTAssertTrue(client.output.contains("ping through TLS"), "s_client said: \(client.errors)")
        XCTAssertEqual(server.handshakes, 1)
        XCTAssertEqual(server.lastVersion, .tls13)
        XCTAssertEqual(server.lastALPN, "http/1.1")
        XCTAssertTrue(client.errors.contains("Verification: OK"), client.errors)

        // Our close sends close_notify, which ends s_client.
        for session in server.sessions.values { session.stream?.close() }
        XCTAssertTrue(loop.runPolling(until: { !client.process.isRunning }, timeout: .seconds(15)), "s_client did not exit")
        XCTAssertTrue(server.failures.isEmpty, "\(server.failures)")
    }

    func testMutualTLSAgainstOpenSSLServer() throws {
        let loop = try makeLoop()
        let port = try freeLocalPort()
        let server = try OpenSSLPeer.server(port: port, workDir: pki.dir,
                                            ["-cert", pki.serverCert, "-key", pki.serverKey, "-www",
                                             "-Verify", "1", "-CAfile", pki.ca])
        defer { server.stop() }
        let (stream, recorder) = try connect(loop, to: localhost(port), serverName: "127.0.0.1",
                                             .client(additionalCAFile: pki.ca, certificateChainFile: pki.clientCert,
                                                     privateKeyFile: pki.clientKey))
        XCTAssertTrue(recorder.opened, "handshake failed: \(String(describing: recorder.closeError))")
        stream.write("GET / HTTP/1.0\r\n\r\n")
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(15)))
        XCTAssertTrue(recorder.text.hasPrefix("HTTP/1.0 200 ok"), recorder.text)
        XCTAssertNil(recorder.closeError)
        XCTAssertTrue(server.errors.contains("test-client") || server.output.contains("test-client"),
                      "s_server saw our certificate: \(server.output) \(server.errors)")
    }

    func testMissingClientCertificateIsRefusedWithAReason() throws {
        let loop = try makeLoop()
        let port = try freeLocalPort()
        let server = try OpenSSLPeer.server(port: port, workDir: pki.dir,
                                            ["-cert", pki.serverCert, "-key", pki.serverKey, "-www",
                                             "-Verify", "1", "-CAfile", pki.ca])
        defer { server.stop() }
        let (stream, recorder) = try connect(loop, to: localhost(port), serverName: "localhost",
                                             .client(additionalCAFile: pki.ca))
        // In TLS 1.3 the client finishes first; the server's refusal arrives as the first record.
        stream.write("GET / HTTP/1.0\r\n\r\n")
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(15)))
        guard case .tls(.session(let peer, let why))? = recorder.closeError else {
            return XCTFail("expected a TLS error, got \(String(describing: recorder.closeError))")
        }
        XCTAssertTrue(why.contains("certificate required"), why)
        XCTAssertEqual(peer, "127.0.0.1:\(port)")
    }

    // MARK: Verification failures name their reason

    func testUnknownCAFailsWithoutTheCAFileAndPassesWithIt() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop)
        defer { server.close() }

        for config in [TLSConfiguration.client(), .client(additionalCAFile: pki.otherCA)] {
            let (_, recorder) = try connect(loop, to: server.address, serverName: "localhost", config)
            XCTAssertFalse(recorder.opened)
            XCTAssertEqual(recorder.closeError, .tls(.verify(peer: "\(server.address)", TLSVerifyFailure(
                code: X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, reason: "certificate verify failed: unable to get local issuer certificate"))))
        }

        let (stream, recorder) = try connect(loop, to: server.address, serverName: "localhost",
                                             .client(additionalCAFile: pki.ca))
        XCTAssertTrue(recorder.opened, "\(String(describing: recorder.closeError))")
        stream.write("hello")
        XCTAssertTrue(loop.run(until: { recorder.received.count == 5 }, timeout: .seconds(15)))
        XCTAssertEqual(recorder.text, "hello")
        stream.close()
        XCTAssertTrue(recorder.closed)
        XCTAssertNil(recorder.closeError)
        XCTAssertTrue(loop.run(until: { server.sessions.isEmpty }, timeout: .seconds(15)), "close_notify ends the server session")
    }

    func testWrongHostNameFailsWithHostnameMismatch() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop)
        defer { server.close() }
        let (_, recorder) = try connect(loop, to: server.address, serverName: "foo.example", .client(additionalCAFile: pki.ca))
        XCTAssertFalse(recorder.opened)
        XCTAssertEqual(recorder.closeError, .tls(.verify(peer: "\(server.address)", TLSVerifyFailure(
            code: TLSVerifyFailure.hostnameMismatch, reason: "certificate verify failed: hostname mismatch (expected foo.example)"))))
        // The server hears our alert.
        XCTAssertTrue(loop.run(until: { !server.failures.isEmpty }, timeout: .seconds(15)))
        XCTAssertTrue("\(server.failures)".contains("bad certificate"), "\(server.failures)")

        let (_, byIP) = try connect(loop, to: server.address, serverName: "127.0.0.2", .client(additionalCAFile: pki.ca))
        XCTAssertTrue("\(String(describing: byIP.closeError))".contains("IP address mismatch (expected 127.0.0.2)"),
                      "\(String(describing: byIP.closeError))")
    }

    func testExpiredCertificateIsRefusedAndSkipVerifyAcceptsIt() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop, cert: pki.expiredCert, key: pki.expiredKey)
        defer { server.close() }
        let (_, recorder) = try connect(loop, to: server.address, serverName: "localhost", .client(additionalCAFile: pki.ca))
        XCTAssertEqual(recorder.closeError, .tls(.verify(peer: "\(server.address)", TLSVerifyFailure(
            code: TLSVerifyFailure.certificateExpired, reason: "certificate verify failed: certificate has expired"))))

        let (stream, lax) = try connect(loop, to: server.address, serverName: "localhost", .client(insecureSkipVerify: true))
        XCTAssertTrue(lax.opened, "\(String(describing: lax.closeError))")
        stream.close()
    }

    func testHandshakeTimesOutAgainstASilentPeer() throws {
        let loop = try makeLoop()
        var held: [Int32] = []
        let silent = try TCPListener(loop: loop, address: try localhost(0)) { fd, _ in held.append(fd) }
        defer { silent.close(); held.forEach { _ = Glibc.close($0) } }
        let recorder = StreamRecorder()
        _ = try TLSStream.connect(loop: loop, to: silent.address, serverName: "localhost",
                                  configuration: .client(additionalCAFile: pki.ca), timeout: .milliseconds(300),
                                  delegate: recorder)
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(15)))
        XCTAssertEqual(recorder.closeError, .tls(.handshakeTimedOut(peer: "\(silent.address)", after: .milliseconds(300))))
    }

    // MARK: Bulk data and backpressure

    func testFourMiBEchoedThroughOurServer() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop)
        defer { server.close() }
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }
        let client = BulkClient(payload: payload)
        let stream = try TLSStream.connect(loop: loop, to: server.address, serverName: "localhost",
                                           context: TLSContext(.client(additionalCAFile: pki.ca)),
                                           timeout: .seconds(10), delegate: client)
        XCTAssertTrue(loop.run(until: { client.received.count >= payload.count || client.closed }, timeout: .seconds(50)),
                      "received \(client.received.count) of \(payload.count)")
        XCTAssertNil(client.closeError)
        XCTAssertEqual(client.received.count, payload.count)
        XCTAssertTrue(client.received == payload, "echoed bytes differ")
        XCTAssertGreaterThan(client.timesBlocked, 0, "the client should have met backpressure")
        stream.close()
        XCTAssertTrue(loop.run(until: { server.sessions.isEmpty }, timeout: .seconds(15)))
        XCTAssertTrue(server.failures.isEmpty, "\(server.failures)")
    }
}

/// Writes a payload as fast as the stream's writability allows and collects the echo.
final class BulkClient: ByteStreamDelegate {
    let payload: [UInt8]
    var sent = 0
    var received: [UInt8] = []
    var closed = false
    var closeError: ConnectionError?
    var timesBlocked = 0

    init(payload: [UInt8]) {
        self.payload = payload
        received.reserveCapacity(payload.count)
    }

    func streamDidOpen(_ stream: ByteStream) {
        // A small socket send buffer (no autotuning): the kernel cannot absorb the whole payload,
        // so the stream's queue must pass its high-water mark, whatever the machine's sysctls.
        if let tcp = (stream as? TLSStream)?.lower as? TCPConnection {
            var small: Int32 = 64 * 1024
            setsockopt(tcp.fd, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        }
        pump(stream)
    }

    private func pump(_ stream: ByteStream) {
        while sent < payload.count {
            guard stream.isWritable else { timesBlocked += 1; return }
            let end = min(sent + 48 * 1024, payload.count)
            payload[sent..<end].withUnsafeBytes { stream.write($0) }
            sent = end
        }
    }

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) { received.append(contentsOf: bytes) }
    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) { if writable { pump(stream) } }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        closed = true
        closeError = error
    }
}

extension TLSStreamTests {
    func testPauseHoldsDeliveryAndResumeDeliversTheRestThenHalfClose() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop)
        defer { server.close() }
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let client = PausingClient()
        var stream: TLSStream? = try TLSStream.connect(loop: loop, to: server.address, serverName: "localhost",
                                                       context: TLSContext(.client(additionalCAFile: pki.ca)),
                                                       delegate: client)
        weak let weakStream = stream
        stream?.write(payload)
        XCTAssertTrue(loop.run(until: { client.paused }, timeout: .seconds(15)))
        // Give the echo every chance to arrive; nothing may be delivered while paused.
        _ = loop.run(until: { false }, timeout: .milliseconds(300))
        XCTAssertEqual(client.readsWhilePaused, 0)
        XCTAssertLessThan(client.received.count, payload.count)

        client.paused = false
        stream?.resumeReading()
        XCTAssertTrue(loop.run(until: { client.received.count >= payload.count || client.closed }, timeout: .seconds(30)))
        XCTAssertTrue(client.received == payload, "got \(client.received.count) bytes, content equal: \(client.received == payload)")

        // Half-close: our close_notify ends the server's reading and it closes; with both
        // directions finished the stream closes cleanly (as TCPConnection does).
        stream?.shutdownWrite()
        XCTAssertTrue(loop.run(until: { client.closed }, timeout: .seconds(15)))
        XCTAssertTrue(client.eof)
        XCTAssertNil(client.closeError)
        stream = nil
        XCTAssertNil(weakStream, "a closed TLSStream is released")
        XCTAssertTrue(loop.run(until: { server.sessions.isEmpty }, timeout: .seconds(15)))
    }
}

/// Pauses at its first read and counts reads that arrive while paused.
final class PausingClient: ByteStreamDelegate {
    var paused = false
    var pausedOnce = false
    var readsWhilePaused = 0
    var received: [UInt8] = []
    var eof = false
    var closed = false
    var closeError: ConnectionError?

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        if paused { readsWhilePaused += 1 }
        received.append(contentsOf: bytes)
        if !pausedOnce {
            pausedOnce = true
            paused = true
            stream.pauseReading()
        }
    }
    func streamDidReadEOF(_ stream: ByteStream) {
        eof = true
        stream.close()
    }
    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        closed = true
        closeError = error
    }
}

extension TLSStreamTests {
    func testTLS12ServerIsAcceptedByDefaultAndRefusedWithA13Floor() throws {
        let loop = try makeLoop()
        let port = try freeLocalPort()
        let server = try OpenSSLPeer.server(port: port, workDir: pki.dir,
                                            ["-cert", pki.serverCert, "-key", pki.serverKey, "-www", "-tls1_2"])
        defer { server.stop() }
        let (stream, recorder) = try connect(loop, to: localhost(port), serverName: "localhost", .client(additionalCAFile: pki.ca))
        XCTAssertTrue(recorder.opened, "\(String(describing: recorder.closeError))")
        XCTAssertEqual(stream.protocolVersion, .tls12)
        stream.write("GET / HTTP/1.0\r\n\r\n")
        XCTAssertTrue(loop.run(until: { recorder.closed }, timeout: .seconds(15)))
        XCTAssertTrue(recorder.text.hasPrefix("HTTP/1.0 200 ok"), recorder.text)
        XCTAssertNil(recorder.closeError)
        server.stop()

        let port2 = try freeLocalPort()
        let server2 = try OpenSSLPeer.server(port: port2, workDir: pki.dir,
                                             ["-cert", pki.serverCert, "-key", pki.serverKey, "-www", "-tls1_2"])
        defer { server2.stop() }
        var strict = TLSConfiguration.client(additionalCAFile: pki.ca)
        strict.minimumVersion = .tls13
        let (_, refused) = try connect(loop, to: localhost(port2), serverName: "localhost", strict)
        XCTAssertFalse(refused.opened)
        guard case .tls(.handshake(let peer, let why))? = refused.closeError else {
            return XCTFail("expected a TLS error, got \(String(describing: refused.closeError))")
        }
        XCTAssertEqual(peer, "127.0.0.1:\(port2)")
        XCTAssertTrue(why.contains("protocol version"), why)
    }
}

extension TLSStreamTests {
    func testConnectByHostNameSendsItAsServerName() throws {
        let loop = try makeLoop()
        let server = try echoServer(loop)
        defer { server.close() }
        // A hosts file of our own keeps the name on 127.0.0.1 (the system one may list ::1 first).
        let hosts = pki.dir + "/hosts"
        try "127.0.0.1 localhost\n".write(toFile: hosts, atomically: true, encoding: .utf8)
        let resolver = try Resolver(loop: loop)
        resolver.hostsPath = hosts
        let recorder = StreamRecorder()
        let stream = try TLSStream.connect(loop: loop, resolver: resolver, host: "localhost", port: server.address.port,
                                           context: TLSContext(.client(additionalCAFile: pki.ca)), delegate: recorder)
        stream.write("by name")
        XCTAssertTrue(loop.run(until: { recorder.received.count >= 7 || recorder.closed }, timeout: .seconds(15)))
        XCTAssertTrue(recorder.opened, "\(String(describing: recorder.closeError))")
        XCTAssertEqual(recorder.text, "by name")
        stream.close()
        XCTAssertTrue(loop.run(until: { server.sessions.isEmpty }, timeout: .seconds(15)), "close_notify reached the server")
        XCTAssertTrue(server.failures.isEmpty, "\(server.failures)")

        // A name the certificate does not carry fails the check, named with host:port.
        try "127.0.0.1 localhost other.test\n".write(toFile: hosts, atomically: true, encoding: .utf8)
        resolver.invalidateHostsCache()
        let wrong = StreamRecorder()
        _ = try TLSStream.connect(loop: loop, resolver: resolver, host: "other.test", port: server.address.port,
                                  context: TLSContext(.client(additionalCAFile: pki.ca)), delegate: wrong)
        XCTAssertTrue(loop.run(until: { wrong.closed }, timeout: .seconds(15)))
        XCTAssertEqual(wrong.closeError, .tls(.verify(peer: "other.test:\(server.address.port)", TLSVerifyFailure(
            code: TLSVerifyFailure.hostnameMismatch, reason: "certificate verify failed: hostname mismatch (expected other.test)"))))
    }
}
