import Foundation
import XCTest
@testable import Reactor

/// RFC 6455 vectors and decoder rules, then interop with python `websockets` both ways.
final class WebSocketTests: XCTestCase {
    private func decode(_ bytes: [UInt8], role: WebSocketDecoder.Role = .client, max: Int = 1 << 20) throws(WebSocketError) -> [WebSocketEvent] {
        var d = WebSocketDecoder(role: role, maxMessageSize: max)
        d.feed(bytes)
        var out: [WebSocketEvent] = []
        while let e = try d.next() { out.append(e) }
        return out
    }

    private func closeCode(_ bytes: [UInt8], role: WebSocketDecoder.Role = .client, max: Int = 1 << 20) -> UInt16? {
        do { _ = try decode(bytes, role: role, max: max); return nil } catch { return error.closeCode }
    }

    func testRFCExamples() throws {
        let hello = Array("Hello".utf8)
        XCTAssertEqual(try decode([0x81, 0x05] + hello), [.text(hello)])
        XCTAssertEqual(try decode([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58], role: .server), [.text(hello)])
        XCTAssertEqual(try decode([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]), [.text(hello)])
        XCTAssertEqual(try decode([0x89, 0x05] + hello), [.ping(hello)])
        XCTAssertEqual(try decode([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58], role: .server), [.pong(hello)])
        let b256 = [UInt8](repeating: 7, count: 256)
        XCTAssertEqual(try decode([0x82, 0x7E, 0x01, 0x00] + b256), [.binary(b256)])
        let b64k = [UInt8](repeating: 9, count: 65536)
        XCTAssertEqual(try decode([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + b64k), [.binary(b64k)])
        XCTAssertEqual(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        // The encoder produces the RFC's masked frame for the RFC's key.
        var out: [UInt8] = []
        hello.withUnsafeBytes { WebSocketFrameEncoder.append(opcode: .text, payload: $0, maskKey: 0x37fa213d, into: &out) }
        XCTAssertEqual(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }

    func testMaskingMatchesBytewise() {
        for n in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000] {
            for phase in 0..<4 {
                let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 13 + 5) }
                let key: UInt32 = 0xA1B2C3D4
                let k: [UInt8] = [0xA1, 0xB2, 0xC3, 0xD4]
                var fast = data
                fast.withUnsafeMutableBytes { WebSocketMask.apply(key: key, to: $0, phase: phase) }
                let slow = data.enumerated().map { $0.element ^ k[($0.offset + phase) % 4] }
                XCTAssertEqual(fast, slow, "n=\(n) phase=\(phase)")
            }
        }
    }

    func testControlFrameBetweenFragmentsAndByteAtATime() throws {
        let frames: [UInt8] = [0x01, 0x02, 0x61, 0x62, 0x89, 0x01, 0x70, 0x00, 0x01, 0x63, 0x80, 0x00]
        var d = WebSocketDecoder(role: .client)
        var events: [WebSocketEvent] = []
        for b in frames {
            d.feed([b])
            while let e = try d.next() { events.append(e) }
        }
        XCTAssertEqual(events, [.ping([0x70]), .text(Array("abc".utf8))])
    }

    /// The in-place path takes only whole unfragmented binary messages, leaves everything else
    /// to `next()`, and sees the same bytes and errors.
    func testWholeBinaryMessagesInPlace() throws {
        func frame(_ op: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, key: UInt32? = nil) -> [UInt8] {
            var out: [UInt8] = []
            payload.withUnsafeBytes { WebSocketFrameEncoder.append(opcode: op, fin: fin, payload: $0, maskKey: key, into: &out) }
            return out
        }
        let big = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let stream = frame(.binary, [1, 2, 3], key: 0x11223344) + frame(.ping, [9], key: 0x55667788)
            + frame(.binary, [4], fin: false, key: 1) + frame(.continuation, [5], key: 2) + frame(.binary, big, key: 0xDEADBEEF)
            + frame(.binary, [], key: 3)
        for chunk in [1, 7, 1000, stream.count] {
            var d = WebSocketDecoder(role: .server)
            var inPlace: [[UInt8]] = []
            var events: [WebSocketEvent] = []
            var offset = 0
            while offset < stream.count {
                d.feed(Array(stream[offset..<min(offset + chunk, stream.count)]))
                offset += chunk
                while true {
                    if let n = try d.beginWholeBinaryMessage() {
                        inPlace.append(Array(d.pendingPayload(n)))
                        d.consumePayload(n)
                    } else if let e = try d.next() {
                        events.append(e)
                    } else {
                        break
                    }
                }
            }
            XCTAssertEqual(inPlace, [[1, 2, 3], big, []], "chunk \(chunk)")
            XCTAssertEqual(events, [.ping([9]), .binary([4, 5])], "chunk \(chunk)")
        }
        // Errors are the same on this path, and stick.
        var bad = WebSocketDecoder(role: .server)
        bad.feed(frame(.binary, [1]))   // unmasked from a client
        XCTAssertThrowsError(try bad.beginWholeBinaryMessage()) { XCTAssertEqual(($0 as? WebSocketError)?.closeCode, 1002) }
        XCTAssertThrowsError(try bad.next())
        var tooBig = WebSocketDecoder(role: .client, maxMessageSize: 10)
        tooBig.feed(frame(.binary, [UInt8](repeating: 0, count: 11)))
        XCTAssertThrowsError(try tooBig.beginWholeBinaryMessage()) { XCTAssertEqual(($0 as? WebSocketError)?.closeCode, 1009) }
    }

    func testProtocolErrors() {
        XCTAssertEqual(closeCode([0x81, 0x01, 0x41], role: .server), 1002, "unmasked client frame")
        XCTAssertEqual(closeCode([0x81, 0x81, 0, 0, 0, 0, 0x41]), 1002, "masked server frame")
        XCTAssertEqual(closeCode([0xC1, 0x00]), 1002, "reserved bit")
        XCTAssertEqual(closeCode([0x83, 0x00]), 1002, "unknown opcode")
        XCTAssertEqual(closeCode([0x09, 0x00]), 1002, "fragmented ping")
        XCTAssertEqual(closeCode([0x89, 0x7E, 0x00, 0x7E] + [UInt8](repeating: 0, count: 126)), 1002, "long ping")
        XCTAssertEqual(closeCode([0x80, 0x00]), 1002, "continuation without start")
        XCTAssertEqual(closeCode([0x01, 0x00, 0x01, 0x00]), 1002, "new message mid-fragment")
        XCTAssertEqual(closeCode([0x81, 0x02, 0xC3, 0x28]), 1007, "bad UTF-8")
        XCTAssertEqual(closeCode([0x81, 0x03, 0xED, 0xA0, 0x80]), 1007, "surrogate")
        XCTAssertEqual(closeCode([0x82, 0x7E, 0x01, 0x00] + [UInt8](repeating: 0, count: 256), max: 100), 1009, "too big")
        XCTAssertEqual(closeCode([0x02, 0x40] + [UInt8](repeating: 0, count: 64) + [0x80, 0x40] + [UInt8](repeating: 0, count: 64), max: 100), 1009)
        XCTAssertEqual(closeCode([0x88, 0x01, 0x03]), 1002, "1-byte close body")
        XCTAssertEqual(closeCode([0x88, 0x02, 0x03, 0xED]), 1002, "close code 1005 on the wire")
        XCTAssertEqual(try? decode([0x88, 0x05, 0x0F, 0xA1, 0x62, 0x79, 0x65]), [.close(code: 4001, reason: "bye")])
        XCTAssertTrue(Array("héllo→✓ 𝄞 plain ascii text here".utf8).withUnsafeBytes { UTF8Validation.isValid($0) })
        XCTAssertFalse([0xF4, 0x90, 0x80, 0x80].withUnsafeBytes { UTF8Validation.isValid($0) }, "above U+10FFFF")
        XCTAssertFalse([0xC0, 0xAF].withUnsafeBytes { UTF8Validation.isValid($0) }, "overlong")
        XCTAssertFalse([0xE2, 0x82].withUnsafeBytes { UTF8Validation.isValid($0) }, "truncated")
    }

    func testBase64() {
        for n in 0..<40 {
            let b = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + n) }
            XCTAssertEqual(Base64.decode(Base64.encode(b)), b)
            XCTAssertEqual(Base64.encode(b), Data(b).base64EncodedString())
        }
        XCTAssertNil(Base64.decode("abc"))
        XCTAssertNil(Base64.decode("ab=c"))
    }

    // MARK: Interop

    func testPythonClientAgainstOurServer() throws {
        guard let py = Peers.require("python3") else { return }
        let loop = try makeLoop()
        let router = HTTPRouter()
        var closeCodes: [UInt16?] = []
        router.add("GET", "/echo") { req, res in
            WebSocketServerUpgrade.upgrade(req, res, subprotocols: ["chat"], maxMessageSize: 8 << 20) { ws in
                ws.onText = { [unowned ws] in ws.sendText($0) }
                ws.onBinary = { [unowned ws] in ws.sendBinary($0) }
                ws.onClose = { code, _, _ in closeCodes.append(code) }
            }
        }
        let server = try HTTPServer(loop: loop, address: loopback(), router: router)
        defer { server.close() }
        let p = try PeerProcess(py, [Peers.fixture("ws_client_check.py"), "ws://127.0.0.1:\(server.port)/echo"])
        defer { p.stop() }
        XCTAssertTrue(loop.spin(while: p, timeout: .seconds(60)))
        XCTAssertEqual(p.process.terminationStatus, 0, p.stdout + p.stderr)
        XCTAssertTrue(p.stdout.contains("ALL OK"), p.stdout + p.stderr)
        loop.spin(until: { closeCodes.count >= 3 }, timeout: .seconds(5))
        XCTAssertEqual(closeCodes.first ?? nil, 4001)
        // A plain GET to the WebSocket route is refused with 400.
        let out = try PeerProcess(Peers.require("curl") ?? "/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(server.port)/echo"])
        loop.spin(while: out)
        XCTAssertEqual(out.stdout, "400")
        out.stop()
    }

    /// The upgrade request and a first frame in one packet: the frame must not be lost in the
    /// HTTP parser's buffer. Also a wrong version gets 426.
    func testFrameInSamePacketAsUpgradeAndBadVersion() throws {
        guard let py = Peers.require("python3") else { return }
        let loop = try makeLoop()
        let router = HTTPRouter()
        router.add("GET", "/ws") { req, res in
            WebSocketServerUpgrade.upgrade(req, res) { ws in
                ws.closeTimeout = .milliseconds(300)   // raw_client never answers the close
                ws.onText = { [unowned ws] in ws.sendText("echo:" + $0); ws.close(code: 1000) }
            }
        }
        let server = try HTTPServer(loop: loop, address: loopback(), router: router)
        defer { server.close() }
        func raw(_ bytes: [UInt8]) throws -> Data {
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            let p = try PeerProcess(py, [Peers.fixture("raw_client.py"), "\(server.port)", hex])
            XCTAssertTrue(loop.spin(while: p))
            defer { p.stop() }
            return p.stdoutData
        }
        let request = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        let out = try raw(Array(request.utf8) + frame)
        let text = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), text)
        XCTAssertTrue(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), text)
        let echo: [UInt8] = [0x81, 0x0A] + Array("echo:Hello".utf8)
        XCTAssertNotNil(out.range(of: Data(echo)), text)
        XCTAssertNotNil(out.range(of: Data([0x88, 0x02, 0x03, 0xE8])), "close 1000 expected: \(text)")
        let bad = try raw(Array(request.replacingOccurrences(of: "Version: 13", with: "Version: 8").utf8))
        let badText = String(decoding: bad, as: UTF8.self)
        XCTAssertTrue(badText.hasPrefix("HTTP/1.1 426 "), badText)
        XCTAssertTrue(badText.contains("Sec-WebSocket-Version: 13"), badText)
    }

    private func connectClient(_ loop: EventLoop, port: Int, subprotocols: [String]) -> Result<WebSocketConnection, WebSocketHandshakeError>? {
        var result: Result<WebSocketConnection, WebSocketHandshakeError>?
        WebSocketClient.connect(loop: loop, url: "ws://127.0.0.1:\(port)/", connector: .tcp(loop: loop),
                                subprotocols: subprotocols, timeout: .seconds(10)) { result = $0 }
        loop.spin(until: { result != nil }, timeout: .seconds(10))
        return result
    }

    func testOurClientAgainstPythonServer() throws {
        guard let py = Peers.require("python3") else { return }
        let p = try PeerProcess(py, [Peers.fixture("ws_echo_server.py")])
        defer { p.stop() }
        guard let port = p.waitForPort() else { return XCTFail("ws_echo_server did not start: \(p.stderr)") }
        let loop = try makeLoop()
        guard case .success(let ws)? = connectClient(loop, port: port, subprotocols: ["chisel-v3"]) else {
            return XCTFail("handshake failed")
        }
        // The python server picks no subprotocol: accepted, like a chisel server's 101.
        XCTAssertNil(ws.subprotocol)
        var received: [[UInt8]] = []
        var texts: [String] = []
        var closed: (UInt16?, ConnectionError?)?
        ws.onBinary = { received.append($0) }
        ws.onText = { texts.append($0) }
        ws.onClose = { code, _, err in closed = (code, err) }
        let sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20]
        for n in sizes {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
            ws.sendBinary(data)
            XCTAssertTrue(loop.spin(until: { received.count == 1 }, timeout: .seconds(20)), "echo of \(n)")
            XCTAssertEqual(received.first?.count, n)
            XCTAssertTrue(received.first == data, "binary \(n) differs")
            received = []
            let text = String(repeating: "ü→", count: n / 5)
            ws.sendText(text)
            XCTAssertTrue(loop.spin(until: { texts.count == 1 }, timeout: .seconds(20)))
            XCTAssertEqual(texts.first, text)
            texts = []
        }
        // A fragmented message from our side, with a ping in between.
        Array("frag".utf8).withUnsafeBytes { ws.send(.text, $0, fin: false) }
        ws.sendPing([1, 2, 3])
        Array("mented".utf8).withUnsafeBytes { ws.send(.continuation, $0, fin: true) }
        XCTAssertTrue(loop.spin(until: { texts.count == 1 }, timeout: .seconds(10)))
        XCTAssertEqual(texts.first, "fragmented")
        // The server closes with a code of its choosing.
        ws.sendText("close:4002")
        XCTAssertTrue(loop.spin(until: { closed != nil }, timeout: .seconds(10)))
        XCTAssertEqual(closed?.0, 4002)
        XCTAssertNil(closed?.1)
    }

    func testWebSocketStreamIsAByteStream() throws {
        guard let py = Peers.require("python3") else { return }
        let p = try PeerProcess(py, [Peers.fixture("ws_echo_server.py")])
        defer { p.stop() }
        guard let port = p.waitForPort() else { return XCTFail("ws_echo_server did not start") }
        let loop = try makeLoop()
        guard case .success(let ws)? = connectClient(loop, port: port, subprotocols: []) else { return XCTFail() }
        final class Sink: ByteStreamDelegate {
            var bytes: [UInt8] = []
            var closed = false
            func stream(_ stream: ByteStream, didRead b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
            func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) { closed = true }
        }
        let sink = Sink()
        let stream = WebSocketStream(ws, delegate: sink)
        var expected: [UInt8] = []
        for i in 0..<200 {
            let piece = [UInt8](repeating: UInt8(i), count: i * 37 % 5000)
            expected += piece
            stream.write(piece)
        }
        XCTAssertTrue(loop.spin(until: { sink.bytes.count >= expected.count }, timeout: .seconds(20)))
        XCTAssertEqual(sink.bytes, expected)
        stream.close()
        XCTAssertTrue(sink.closed)
    }
}
