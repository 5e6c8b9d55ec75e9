import Foundation
import XCTest
@testable import Reactor

/// The server's per-answer report (request counters by route and status are built on it):
/// exactly one record per answer, with the route the router matched, for plain answers,
/// streams, upgrades, router errors and the server's own errors.
final class HTTPResponseObserverTests: XCTestCase {
    func testEveryKindOfAnswerIsReportedOnceWithItsRouteAndStatus() throws {
        guard let py = Peers.require("python3") else { return }
        let loop = try makeLoop()
        let router = HTTPRouter()
        router.add("GET", "/health") { _, res in res.sendJSON(200, #"{"ok":true}"#) }
        router.addPrefix("GET", "/api/") { _, res in res.sendJSON(202, "{}") }
        router.add("GET", "/stream") { _, res in
            let s = res.startStreaming(206, headers: HTTPHeaders([("Content-Type", "text/plain")]))
            loop.schedule(in: .milliseconds(20)) { s.write("later\n"); s.finish() }
        }
        router.add("GET", "/ws") { req, res in
            WebSocketServerUpgrade.upgrade(req, res) { ws in ws.close(code: 1000) }
        }
        var config = HTTPServerConfiguration()
        config.headTimeout = .milliseconds(300)
        let server = try HTTPServer(loop: loop, address: loopback(), configuration: config, router: router)
        defer { server.close() }
        var records: [HTTPResponseRecord] = []
        server.onResponse = { records.append($0) }
        XCTAssertTrue(router.routes("/health") && router.routes("/api/anything") && !router.routes("/nope"))

        func raw(_ text: String) throws {
            let hex = Array(text.utf8).map { String(format: "%02x", $0) }.joined()
            let p = try PeerProcess(py, [Peers.fixture("raw_client.py"), "\(server.port)", hex])
            XCTAssertTrue(loop.spin(while: p))
            p.stop()
        }
        // Pipelined on one connection, the last one closing it.
        try raw("GET /health HTTP/1.1\r\nHost: a\r\n\r\n" + "GET /api/x/y HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n" + "DELETE /health HTTP/1.1\r\nHost: a\r\n\r\n"
                + "HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n" + "GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        try raw("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        try raw("NOT HTTP AT ALL\r\n\r\n")
        try raw("GET /health HTTP/1.1\r\nHost: a\r\n")   // the head never ends: 408
        XCTAssertEqual(records, [
            HTTPResponseRecord(method: "GET", route: "/health", status: 200),
            HTTPResponseRecord(method: "GET", route: "/api/", status: 202),
            HTTPResponseRecord(method: "GET", route: nil, status: 404),
            HTTPResponseRecord(method: "DELETE", route: "/health", status: 405),
            HTTPResponseRecord(method: "HEAD", route: "/health", status: 200),
            HTTPResponseRecord(method: "GET", route: "/stream", status: 206),
            HTTPResponseRecord(method: "GET", route: "/ws", status: 101),
            HTTPResponseRecord(method: "", route: nil, status: 400),
            HTTPResponseRecord(method: "", route: nil, status: 408),
        ])
    }

    /// Over `maxConnections`, the 503 the server writes at accept is reported too.
    func testTheConnectionLimitAnswerIsReported() throws {
        guard let curl = Peers.require("curl") else { return }
        let loop = try makeLoop()
        let router = HTTPRouter()
        router.add("GET", "/health") { _, res in res.sendJSON(200, "{}") }
        var config = HTTPServerConfiguration()
        config.maxConnections = 0
        let server = try HTTPServer(loop: loop, address: loopback(), configuration: config, router: router)
        defer { server.close() }
        var records: [HTTPResponseRecord] = []
        server.onResponse = { records.append($0) }
        let p = try PeerProcess(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(server.port)/health"])
        XCTAssertTrue(loop.spin(while: p))
        XCTAssertEqual(p.stdout, "503")
        p.stop()
        XCTAssertEqual(records, [HTTPResponseRecord(method: "", route: nil, status: 503)])
    }
}
