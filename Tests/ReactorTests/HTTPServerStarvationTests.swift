import Logging
import XCTest
@testable import Reactor

/// Clients that try to hold the server's connections without using them (issue 15, defect 3):
/// one that connects and sends nothing, one that trickles a body, and enough idle ones to fill
/// the connection limit. `/health` must stay reachable whatever they do.
final class HTTPServerStarvationTests: XCTestCase {
    var loop: EventLoop!
    var logs: CapturedLogs!
    var router: HTTPRouter!
    /// Requests to /hang, held unanswered.
    var hanging: [HTTPResponder] = []

    override func setUpWithError() throws {
        logs = CapturedLogs()
        loop = try EventLoop(logger: Logger(label: "test", factory: logs.handler))
        router = HTTPRouter()
        router.add("GET", "/health") { _, res in res.sendJSON(200, #"{"status":"healthy"}"#) }
        router.add("GET", "/hang") { [unowned self] _, res in self.hanging.append(res) }
        router.add("POST", "/upload") { req, res in res.sendJSON(200, #"{"bytes":\#(req.body.count)}"#) }
    }

    override func tearDown() {
        hanging = []
        loop = nil
    }

    private func server(_ change: (inout HTTPServerConfiguration) -> Void) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        change(&config)
        return try HTTPServer(loop: loop, address: loopback(), configuration: config, router: router)
    }

    /// A client socket on the loop that records what it receives.
    private func connect(_ server: HTTPServer) throws -> (TCPConnection, Recorder) {
        let r = Recorder()
        let c = try TCPConnection.connect(loop: loop, to: loopback(server.port), timeout: .seconds(5), delegate: r)
        XCTAssertTrue(loop.run(until: { r.opened }, timeout: .seconds(5)))
        return (c, r)
    }

    private func text(_ r: Recorder) -> String { String(decoding: r.received, as: UTF8.self) }

    /// Before, the first-byte wait was the 60 s keep-alive idle timeout.
    func testConnectionThatSendsNothingIsClosedAfterTheHeadTimeout() throws {
        let s = try server { $0.headTimeout = .milliseconds(300); $0.idleTimeout = .seconds(60) }
        defer { s.close() }
        let (_, silent) = try connect(s)
        XCTAssertTrue(loop.run(until: { silent.isClosed }, timeout: .seconds(20)),
                      "a connection that sent nothing is still open")
        XCTAssertEqual(silent.received.count, 0)
        XCTAssertEqual(s.connectionCount, 0)
    }

    /// Only the first request is timed from accept: between requests the idle timeout holds.
    func testKeepAliveBetweenRequestsStillWaitsForTheIdleTimeout() throws {
        let s = try server { $0.headTimeout = .milliseconds(200); $0.idleTimeout = .seconds(60) }
        defer { s.close() }
        let (client, r) = try connect(s)
        client.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(loop.run(until: { self.text(r).hasSuffix(#"{"status":"healthy"}"#) }, timeout: .seconds(5)), text(r))
        // Five head timeouts of keep-alive idle: the connection must still be there.
        loop.run(until: { r.isClosed }, timeout: .seconds(1))
        XCTAssertFalse(r.isClosed, "a keep-alive connection was closed after the head timeout, not the idle one")
        r.received.removeAll()
        client.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(loop.run(until: { self.text(r).hasSuffix(#"{"status":"healthy"}"#) }, timeout: .seconds(5)), text(r))
        client.close(nil)
    }

    /// A body trickled faster than the gap timeout ends at its total deadline with 408. Before,
    /// every byte reset the gap timer and nothing bounded the whole.
    func testTrickledBodyEndsAtItsTotalDeadline() throws {
        let s = try server { $0.bodyTimeout = .seconds(1); $0.bodyTotalTimeout = .milliseconds(800) }
        defer { s.close() }
        let (client, r) = try connect(s)
        client.write("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        var ticking = true
        func trickle() {
            guard ticking, !r.isClosed else { return }
            client.write("a")
            loop.schedule(in: .milliseconds(100)) { trickle() }
        }
        trickle()
        defer { ticking = false }
        XCTAssertTrue(loop.run(until: { r.isClosed || self.text(r).contains("\r\n\r\n{") }, timeout: .seconds(20)),
                      "the trickled body is still being read")
        XCTAssertTrue(text(r).hasPrefix("HTTP/1.1 408 "), text(r))
        XCTAssertTrue(text(r).contains("request body not complete within"), text(r))
        client.close(nil)
    }

    /// At the limit, the connection idle longest makes room (nginx's keep-alive reuse): the
    /// probe is answered instead of refused with 503.
    func testAtTheLimitTheLongestIdleConnectionMakesRoomForAProbe() throws {
        let s = try server { $0.maxConnections = 3; $0.headTimeout = .seconds(30) }
        defer { s.close() }
        var idle: [(TCPConnection, Recorder)] = []
        for n in 1...3 {
            idle.append(try connect(s))
            XCTAssertTrue(loop.run(until: { s.connectionCount == n }, timeout: .seconds(5)))
        }
        let (probe, answer) = try connect(s)
        probe.write("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(loop.run(until: { answer.isClosed }, timeout: .seconds(5)))
        XCTAssertTrue(text(answer).hasPrefix("HTTP/1.1 200 "), text(answer))
        XCTAssertTrue(loop.run(until: { idle[0].1.isClosed }, timeout: .seconds(5)), "the oldest idle connection is still open")
        XCTAssertFalse(idle[1].1.isClosed)
        XCTAssertFalse(idle[2].1.isClosed)
        XCTAssertEqual(s.shedConnections, 1)
        XCTAssertEqual(s.rejectedConnections, 0)
        for (c, _) in idle { c.close(nil) }
    }

    /// When every connection is busy, new ones get 503; the hits are logged at warning, one
    /// line per interval with the count, not one per refusal.
    func testLimitHitsAreLoggedAtWarningOncePerInterval() throws {
        let s = try server { $0.maxConnections = 1; $0.headTimeout = .seconds(30); $0.limitLogInterval = .milliseconds(500) }
        defer { s.close() }
        // The one allowed connection is busy with a request.
        let (busy, _) = try connect(s)
        busy.write("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(loop.run(until: { self.hanging.count == 1 }, timeout: .seconds(5)))
        var refused: [Recorder] = []
        for _ in 0..<10 {
            let (_, r) = try connect(s)
            refused.append(r)
        }
        XCTAssertTrue(loop.run(until: { refused.allSatisfy(\.isClosed) }, timeout: .seconds(10)))
        for r in refused { XCTAssertTrue(text(r).hasPrefix("HTTP/1.1 503 "), text(r)) }
        XCTAssertEqual(s.rejectedConnections, 10)
        // The first hit at once, the other nine in one line when the interval ends.
        guard let lines = logs.limitHitLines(containing: "connection limit reached",
                                             wait: { loop.run(until: $0, timeout: .seconds(5)) }) else { return }
        XCTAssertTrue(CapturedLogs.line(lines[0], has: "hits", "1"), lines[0])
        XCTAssertTrue(CapturedLogs.line(lines[1], has: "hits", "9"), lines[1])
        busy.close(nil)
    }
}
