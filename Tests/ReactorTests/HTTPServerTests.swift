import Foundation
import XCTest
@testable import Reactor

/// Our server against real clients: curl, raw sockets (python), wrk.
final class HTTPServerTests: XCTestCase {
    var loop: EventLoop!
    var server: HTTPServer!
    var peersSeen: [String] = []
    var router: HTTPRouter!

    override func setUpWithError() throws {
        loop = try makeLoop()
        let router = HTTPRouter()
        self.router = router
        router.add("GET", "/health") { [unowned self] req, res in
            self.peersSeen.append(req.peer.map { "\($0)" } ?? "?")
            res.sendJSON(200, #"{"status":"healthy"}"#)
        }
        router.add("POST", "/upload") { req, res in
            let sum = req.body.reduce(UInt64(0)) { $0 &+ UInt64($1) }
            res.sendJSON(200, #"{"bytes":\#(req.body.count),"sum":\#(sum)}"#)
        }
        router.add("GET", "/slow") { [unowned self] _, res in
            self.loop.schedule(in: .milliseconds(50)) { res.send(200, contentType: "text/plain", body: "slow\n") }
        }
        router.add("GET", "/fast") { _, res in res.send(200, contentType: "text/plain", body: "fast\n") }
        router.add("GET", "/stream") { [unowned self] _, res in
            let s = res.startStreaming(200, headers: HTTPHeaders([("Content-Type", "text/plain")]))
            var n = 0
            func more() {
                guard s.isOpen else { return }
                if n == 3 { s.finish(); return }
                s.write("part \(n)\n")
                n += 1
                self.loop.schedule(in: .milliseconds(10)) { more() }
            }
            more()
        }
        router.add("GET", "/events") { _, res in
            let sse = SSEStream(responder: res, keepAlive: .milliseconds(20))
            sse.send(SSEEvent(id: "1", event: "connected", data: #"{"a":1}"#))
            sse.send(SSEEvent(id: "2", event: "multi", data: "line1\nline2"))
            self.loop.schedule(in: .milliseconds(70)) { sse.finish() }
        }
        router.addPrefix("GET", "/api/") { req, res in res.sendJSON(200, #"{"path":\#(JSONText.quoted(String(req.path)))}"#) }
        var config = HTTPServerConfiguration()
        config.headTimeout = .seconds(1)
        config.limits.maxBodyBytes = 1 << 20
        server = try HTTPServer(loop: loop, address: loopback(), configuration: config, router: router)
    }

    override func tearDown() {
        server?.close()
        server = nil
        loop = nil
    }

    private func curl(_ args: [String]) throws -> PeerProcess? {
        guard let curl = Peers.require("curl") else { return nil }
        let p = try PeerProcess(curl, ["--http1.1", "-sS", "--max-time", "20"] + args)
        XCTAssertTrue(loop.spin(while: p))
        return p
    }

    private func raw(_ bytes: String, slow: Bool = false) throws -> String {
        guard let py = Peers.require("python3") else { return "" }
        let hex = Array(bytes.utf8).map { String(format: "%02x", $0) }.joined()
        let p = try PeerProcess(py, [Peers.fixture("raw_client.py"), "\(server.port)", hex] + (slow ? ["--slow"] : []))
        XCTAssertTrue(loop.spin(while: p))
        defer { p.stop() }
        return p.stdout
    }

    func testCurlKeepAliveTwoURLs() throws {
        let base = "http://127.0.0.1:\(server.port)"
        guard let p = try curl(["-v", "\(base)/health", "\(base)/api/x/y"]) else { return }
        defer { p.stop() }
        XCTAssertEqual(p.process.terminationStatus, 0, p.stderr)
        XCTAssertEqual(p.stdout, #"{"status":"healthy"}{"path":"/api/x/y"}"#)
        XCTAssertTrue(p.stderr.contains("Re-using existing connection") || p.stderr.contains("Reusing existing"), p.stderr)
        XCTAssertEqual(server.requestsServed, 2)
    }

    func testCurlChunkedUpload() throws {
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString)")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        guard let p = try curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file.path)", "http://127.0.0.1:\(server.port)/upload"]) else { return }
        defer { p.stop() }
        let sum = bytes.reduce(UInt64(0)) { $0 &+ UInt64($1) }
        XCTAssertEqual(p.stdout, #"{"bytes":300000,"sum":\#(sum)}"#, p.stderr)
    }

    func testTooBigBodyIs413() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("big-\(UUID().uuidString)")
        try Data(count: 2 << 20).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        for chunked in [false, true] {
            guard let p = try curl(["-o", "/dev/null", "-w", "%{http_code}"] + (chunked ? ["-H", "Transfer-Encoding: chunked"] : [])
                                   + ["--data-binary", "@\(file.path)", "http://127.0.0.1:\(server.port)/upload"]) else { return }
            XCTAssertEqual(p.stdout, "413", "chunked=\(chunked) \(p.stderr)")
            p.stop()
        }
    }

    func testStreamingAndSSEWithCurl() throws {
        guard let p = try curl(["-N", "http://127.0.0.1:\(server.port)/stream"]) else { return }
        XCTAssertEqual(p.stdout, "part 0\npart 1\npart 2\n")
        p.stop()
        guard let q = try curl(["-N", "-i", "http://127.0.0.1:\(server.port)/events"]) else { return }
        defer { q.stop() }
        XCTAssertTrue(q.stdout.contains("Content-Type: text/event-stream"), q.stdout)
        XCTAssertTrue(q.stdout.contains("id: 1\nevent: connected\ndata: {\"a\":1}\n\n"), q.stdout)
        XCTAssertTrue(q.stdout.contains("id: 2\nevent: multi\ndata: line1\ndata: line2\n\n"), q.stdout)
        XCTAssertTrue(q.stdout.contains(": keepalive\n\n"), q.stdout)
    }

    func testPipelinedRequestsAnsweredInOrder() throws {
        let out = try raw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let slow = out.range(of: "slow\n"), fast = out.range(of: "fast\n"), health = out.range(of: "healthy")
        XCTAssertNotNil(slow, out)
        XCTAssertNotNil(fast, out)
        XCTAssertNotNil(health, out)
        if let slow, let fast, let health {
            XCTAssertTrue(slow.lowerBound < fast.lowerBound && fast.lowerBound < health.lowerBound, out)
        }
        XCTAssertEqual(out.components(separatedBy: "HTTP/1.1 200 OK").count, 4, out)
    }

    /// A client that pipelines requests and never reads the answers: the server stops handling
    /// (and reading) once its answers back up, so what it holds stays bounded, and all of it is
    /// let go when the client leaves. Before backpressure, 40 MB of requests grew RSS by 300 MB.
    func testPipelinedFloodWithoutReadingStaysBounded() throws {
        guard let py = Peers.require("python3") else { return }
        let p = try PeerProcess(py, [Peers.fixture("pipeline_flood.py"), "\(server.port)", "40"])
        var peak = 0
        XCTAssertTrue(loop.spin(until: {
            peak = max(peak, self.server.bufferedBytes)
            return !p.isRunning
        }, timeout: .seconds(60)))
        defer { p.stop() }
        let sent = p.stdout.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        XCTAssertGreaterThan(sent, 0, p.stdout + p.stderr)
        XCTAssertLessThan(sent, 40 << 20, "the server kept reading a client that reads nothing: \(p.stdout)")
        XCTAssertLessThan(peak, 1 << 20, "held \(peak) bytes for one client that reads nothing")
        XCTAssertTrue(loop.spin(until: { self.server.connectionCount == 0 }, timeout: .seconds(10)))
        XCTAssertEqual(server.bufferedBytes, 0)
    }

    /// Backpressure only delays: a client that pipelines, pauses, then reads gets every answer.
    func testPipelinedFloodIsAnsweredOnceTheClientReads() throws {
        guard let py = Peers.require("python3") else { return }
        // The default head timeout: this test's 1 s can pass while the last requests wait in the
        // client's socket (its sends back off while our reads were paused).
        let patient = try HTTPServer(loop: loop, address: loopback(), router: router)
        defer { patient.close() }
        let p = try PeerProcess(py, [Peers.fixture("pipeline_flood.py"), "\(patient.port)", "6", "--read-after"])
        XCTAssertTrue(loop.spin(while: p, timeout: .seconds(60)))
        defer { p.stop() }
        let lines = p.stdout.split(separator: "\n")
        let requests = lines.first { $0.hasPrefix("SENT") }.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } ?? -1
        let answers = lines.first { $0.hasPrefix("ANSWERS") }.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } ?? -2
        XCTAssertGreaterThan(requests, 1000, p.stdout + p.stderr)
        XCTAssertEqual(answers, requests, p.stdout)
    }

    func testBadInputStatuses() throws {
        var out = try raw("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 20000) + "\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 431 "), out)
        XCTAssertTrue(out.contains(#""status":431"#), out)
        out = try raw("GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 400 "), out)
        XCTAssertTrue(out.contains("Connection: close"), out)
        out = try raw("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 413 "), out)
        out = try raw("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 404 "), out)
        XCTAssertTrue(out.contains(#"{"error":"not found: /nope","status":404}"#), out)
        out = try raw("DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 405 "), out)
        XCTAssertTrue(out.contains("Allow: GET\r\n"), out)
        // HEAD answered from the GET route without a body.
        out = try raw("HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 200 ") && out.hasSuffix("\r\n\r\n"), out)
        // RFC 9112 §3.2: an HTTP/1.1 request without a Host, or with two, is refused.
        out = try raw("GET /health HTTP/1.1\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 400 ") && out.contains("no Host header"), out)
        out = try raw("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 400 ") && out.contains("2 Host header fields"), out)
        // The server keeps serving others after all that.
        out = try raw("GET /health HTTP/1.0\r\n\r\n")
        XCTAssertTrue(out.hasSuffix(#"{"status":"healthy"}"#), out)
    }

    func testSlowHeadTimesOutWith408() throws {
        // One byte every 200 ms: the 1 s head timeout fires first.
        let out = try raw("GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaa\r\n\r\n", slow: true)
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 408 "), out)
    }

    func testIdleKeepAliveTimeoutAndStreamClientGone() throws {
        var config = HTTPServerConfiguration()
        config.idleTimeout = .milliseconds(300)
        let router = HTTPRouter()
        var streamClosed = false
        router.add("GET", "/forever") { _, res in
            let s = res.startStreaming()
            s.write("first\n")
            s.onClose = { streamClosed = true }
        }
        router.add("GET", "/ok") { _, res in res.send(204) }
        let idle = try HTTPServer(loop: loop, address: loopback(), configuration: config, router: router)
        defer { idle.close() }
        // raw_client.py reads until the server closes: the idle timer must do that.
        guard let py = Peers.require("python3") else { return }
        let hex = Array("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n".utf8).map { String(format: "%02x", $0) }.joined()
        let p = try PeerProcess(py, [Peers.fixture("raw_client.py"), "\(idle.port)", hex])
        XCTAssertTrue(loop.spin(while: p))
        XCTAssertTrue(p.stdout.hasPrefix("HTTP/1.1 204 "), p.stdout)
        XCTAssertFalse(p.stdout.contains("Content-Length"), "204 has no Content-Length: \(p.stdout)")
        p.stop()
        XCTAssertTrue(loop.spin(until: { idle.connectionCount == 0 }, timeout: .seconds(5)))
        // A streaming response learns when its client goes away.
        guard let curlPath = Peers.require("curl") else { return }
        let c = try PeerProcess(curlPath, ["-sN", "--max-time", "1", "http://127.0.0.1:\(idle.port)/forever"])
        XCTAssertTrue(loop.spin(while: c))
        XCTAssertEqual(c.stdout, "first\n")
        c.stop()
        XCTAssertTrue(loop.spin(until: { streamClosed }, timeout: .seconds(5)))
    }

    func testConnectionLimit() throws {
        var config = HTTPServerConfiguration()
        config.maxConnections = 0
        let router = HTTPRouter()
        let limited = try HTTPServer(loop: loop, address: loopback(), configuration: config, router: router)
        defer { limited.close() }
        guard let curlPath = Peers.require("curl") else { return }
        let p = try PeerProcess(curlPath, ["--http1.1", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(limited.port)/health"])
        XCTAssertTrue(loop.spin(while: p))
        XCTAssertEqual(p.stdout, "503")
        p.stop()
    }

    func testWrkHundredConnectionsNoErrors() throws {
        guard let wrk = Peers.require("wrk") else { return }
        let p = try PeerProcess(wrk, ["-t1", "-c100", "-d10s", "http://127.0.0.1:\(server.port)/health"])
        XCTAssertTrue(loop.spin(while: p, timeout: .seconds(40)))
        defer { p.stop() }
        let out = p.stdout
        print(out)
        XCTAssertFalse(out.contains("Socket errors"), out)
        XCTAssertFalse(out.contains("Non-2xx"), out)
        let requests = out.split(separator: "\n").first { $0.contains("requests in") }
            .flatMap { Int($0.trimmingCharacters(in: .whitespaces).split(separator: " ")[0]) } ?? 0
        XCTAssertGreaterThan(requests, 1000, out)
        XCTAssertTrue(loop.spin(until: { self.server.connectionCount == 0 }, timeout: .seconds(5)), "connections left: \(server.connectionCount)")
    }
}
