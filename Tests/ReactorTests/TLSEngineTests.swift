import XCTest
@testable import Reactor

/// Two engines facing each other in memory: no sockets, no loop.
final class TLSEngineTests: XCTestCase {
    private func pump(_ a: TLSEngine, _ b: TLSEngine) {
        for _ in 0..<10 {
            var moved = false
            a.drainCiphertext { moved = true; b.receiveCiphertext($0) }
            b.drainCiphertext { moved = true; a.receiveCiphertext($0) }
            _ = a.handshake()
            _ = b.handshake()
            if !moved { return }
        }
    }

    private func readAll(_ e: TLSEngine) -> (String, TLSEngine.ReadResult) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = buf.withUnsafeMutableBytes { e.read(into: $0) }
            guard case .bytes(let n) = r else { return (String(decoding: out, as: UTF8.self), r) }
            out += buf[0..<n]
        }
    }

    func testHandshakeDataAndCloseNotifyBetweenTwoEngines() throws {
        let pki = try TLSTestPKI.make()
        defer { pki.remove() }
        let client = try TLSEngine(context: TLSContext(.client(alpn: ["h2", "http/1.1"], additionalCAFile: pki.ca)),
                                   serverName: "localhost")
        let server = try TLSEngine(context: TLSContext(.server(certificateChainFile: pki.serverCert,
                                                               privateKeyFile: pki.serverKey, alpn: ["http/1.1", "h2"])))
        XCTAssertEqual(client.handshake(), .inProgress)
        pump(client, server)
        XCTAssertEqual(client.handshake(), .complete)
        XCTAssertEqual(server.handshake(), .complete)
        XCTAssertEqual(client.protocolVersion, .tls13)
        XCTAssertEqual(server.protocolVersion, .tls13)
        XCTAssertEqual(client.alpnProtocol, "http/1.1", "the server's preference wins")
        XCTAssertEqual(server.alpnProtocol, "http/1.1")

        XCTAssertNil(Array("hello server".utf8).withUnsafeBytes { client.write($0) })
        pump(client, server)
        let (atServer, serverState) = readAll(server)
        XCTAssertEqual(atServer, "hello server")
        XCTAssertEqual(serverState, .needCiphertext)

        XCTAssertNil(Array("hello client".utf8).withUnsafeBytes { server.write($0) })
        server.closeNotify()
        pump(client, server)
        let (atClient, clientState) = readAll(client)
        XCTAssertEqual(atClient, "hello client")
        XCTAssertEqual(clientState, .closeNotify)
        XCTAssertTrue(client.receivedCloseNotify)
    }

    func testHostnameMismatchNamesTheExpectedName() throws {
        let pki = try TLSTestPKI.make()
        defer { pki.remove() }
        let client = try TLSEngine(context: TLSContext(.client(additionalCAFile: pki.ca)), serverName: "foo.example")
        let server = try TLSEngine(context: TLSContext(.server(certificateChainFile: pki.serverCert, privateKeyFile: pki.serverKey)))
        _ = client.handshake()
        pump(client, server)
        guard case .failed(let why) = client.handshake() else { return XCTFail("handshake should fail") }
        XCTAssertEqual(why, "certificate verify failed: hostname mismatch (expected foo.example)")
        // The client's alert reaches the server as a failure too.
        client.drainCiphertext { server.receiveCiphertext($0) }
        guard case .failed(let serverWhy) = server.handshake() else { return XCTFail("server should see the alert") }
        XCTAssertTrue(serverWhy.contains("bad certificate"), serverWhy)
    }

    func testConfigurationErrorsNameTheFile() throws {
        let pki = try TLSTestPKI.make()
        defer { pki.remove() }
        XCTAssertThrowsError(try TLSContext(.server(certificateChainFile: pki.dir + "/missing.pem", privateKeyFile: pki.serverKey))) {
            XCTAssertTrue("\($0)".contains("cannot load certificate chain \(pki.dir)/missing.pem"), "\($0)")
        }
        XCTAssertThrowsError(try TLSContext(.server(certificateChainFile: pki.serverCert, privateKeyFile: pki.clientKey))) {
            XCTAssertTrue("\($0)".contains("key values mismatch"), "\($0)")
        }
        XCTAssertThrowsError(try TLSContext(.client(alpn: [""]))) {
            XCTAssertTrue("\($0)".contains("ALPN protocol name"), "\($0)")
        }
        XCTAssertThrowsError(try TLSEngine(context: TLSContext(.client()), serverName: nil)) {
            XCTAssertTrue("\($0)".contains("needs a server name"), "\($0)")
        }
    }
}
