import Logging
import XCTest
@testable import Reactor

/// HTTPClient's limits (issue 15): connections per origin, requests waiting for one, and a
/// response that stops arriving. The server is our HTTPServer, whose handlers hold their
/// answers until the test releases them.
final class HTTPClientLimitTests: XCTestCase {
    var loop: EventLoop!
    var client: HTTPClient!
    var server: HTTPServer!
    /// Requests to /hold, unanswered until the test answers them.
    var held: [(query: String, responder: HTTPResponder)] = []

    var logs: CapturedLogs!

    override func setUpWithError() throws {
        logs = CapturedLogs()
        loop = try makeLoop(logger: Logger(label: "test", factory: logs.handler))
        client = HTTPClient(loop: loop, connector: .tcp(loop: loop))
        let router = HTTPRouter()
        router.add("GET", "/hold") { [unowned self] req, res in self.held.append((String(req.query ?? ""), res)) }
        router.add("GET", "/drip") { [unowned self] _, res in
            // Ten bytes, one every 100 ms: slow, but never silent for long.
            let s = res.startStreaming(200, headers: HTTPHeaders([("Content-Type", "text/plain")]))
            var n = 0
            func more() {
                guard s.isOpen else { return }
                if n == 10 { s.finish(); return }
                s.write("x")
                n += 1
                self.loop.schedule(in: .milliseconds(100)) { more() }
            }
            more()
        }
        server = try HTTPServer(loop: loop, address: loopback(), router: router)
    }

    override func tearDown() {
        held = []
        client?.closeIdle()
        server?.close()
        client = nil
        server = nil
        loop = nil
    }

    private func request(_ path: String) throws -> HTTPClientRequest {
        try HTTPClientRequest(url: "http://127.0.0.1:\(server.port)\(path)")
    }

    /// Five requests, two connections allowed: two reach the server, three wait and go out on
    /// those connections as they free up. Before, five connections were opened at once.
    func testConnectionsPerOriginAreCappedAndWaitingRequestsGoOutInOrder() throws {
        client.maxConnectionsPerOrigin = 2
        var results: [Int: Result<HTTPClientResponse, HTTPError>] = [:]
        for i in 0..<5 {
            client.fetch(try request("/hold?n=\(i)")) { results[i] = $0 }
        }
        XCTAssertTrue(loop.spin(until: { self.held.count == 2 }, timeout: .seconds(10)))
        // Time for more connections to arrive, if the client made them.
        loop.spin(until: { self.held.count > 2 }, timeout: .milliseconds(500))
        XCTAssertEqual(held.count, 2, "requests reached the server beyond the cap")
        XCTAssertEqual(server.connectionCount, 2)
        XCTAssertEqual(client.requestsQueued, 3)
        var answered = 0
        XCTAssertTrue(loop.spin(until: {
            while answered < self.held.count {
                self.held[answered].responder.sendJSON(200, #"{"n":\#(answered)}"#)
                answered += 1
            }
            return results.count == 5
        }, timeout: .seconds(10)), "answered \(answered), results \(results.count)")
        for i in 0..<5 {
            guard case .success(let r)? = results[i] else { return XCTFail("request \(i): \(String(describing: results[i]))") }
            XCTAssertEqual(r.status, 200)
        }
        XCTAssertEqual(client.connectionsOpened, 2)
        // The waiting requests went out in the order they were made.
        XCTAssertEqual(held.map(\.query), ["n=0", "n=1", "n=2", "n=3", "n=4"])
    }

    /// Past `maxWaitingPerOrigin`, a request fails at once instead of joining the queue; a
    /// waiting request still ends at its own deadline.
    func testWaitingRequestsAreBoundedAndKeepTheirDeadline() throws {
        client.maxConnectionsPerOrigin = 1
        client.maxWaitingPerOrigin = 2
        var first: Result<HTTPClientResponse, HTTPError>?
        var patient: Result<HTTPClientResponse, HTTPError>?
        var hasty: Result<HTTPClientResponse, HTTPError>?
        var refused: Result<HTTPClientResponse, HTTPError>?
        client.fetch(try request("/hold")) { first = $0 }
        client.fetch(try request("/hold"), timeout: .seconds(20)) { patient = $0 }
        client.fetch(try request("/hold"), timeout: .milliseconds(200)) { hasty = $0 }
        client.fetch(try request("/hold")) { refused = $0 }
        guard case .failure(.tooManyWaiting(let limit, _))? = refused else { return XCTFail("\(String(describing: refused))") }
        XCTAssertEqual(limit, 2)
        XCTAssertEqual(client.requestsRefused, 1)
        XCTAssertTrue(loop.spin(until: { hasty != nil }, timeout: .seconds(10)))
        // It never got a connection: its deadline passed while it waited for one.
        guard case .failure(.timedOut(phase: .connecting, _))? = hasty else { return XCTFail("\(String(describing: hasty))") }
        XCTAssertTrue(loop.spin(until: { self.held.count == 1 }, timeout: .seconds(10)))
        held[0].responder.sendJSON(200, "{}")
        XCTAssertTrue(loop.spin(until: { self.held.count == 2 }, timeout: .seconds(10)), "the waiting request never went out")
        held[1].responder.sendJSON(200, "{}")
        XCTAssertTrue(loop.spin(until: { first != nil && patient != nil }, timeout: .seconds(10)))
        guard case .success? = first, case .success? = patient else { return XCTFail("\(String(describing: first)) \(String(describing: patient))") }
        XCTAssertEqual(held.count, 2, "the request that timed out while waiting was sent anyway")
    }

    /// Requests held or refused at the cap are logged at warning, one line per interval with
    /// the count and the totals, not one per request.
    func testCapHitsAreLoggedAtWarningOncePerInterval() throws {
        client.name = "test client"
        client.maxConnectionsPerOrigin = 1
        client.maxWaitingPerOrigin = 3
        client.limitLogInterval = .milliseconds(500)
        var results = 0
        // One goes out, three wait, two are refused: five hits.
        for _ in 0..<6 { client.fetch(try request("/hold"), timeout: .seconds(20)) { _ in results += 1 } }
        XCTAssertEqual(client.requestsQueued, 3)
        XCTAssertEqual(client.requestsRefused, 2)
        // The first hit at once, the other four in one line when the interval ends.
        guard let lines = logs.limitHitLines(containing: "test client: per-origin connection limit reached",
                                             wait: { loop.spin(until: $0, timeout: .seconds(5)) }) else { return }
        let has = CapturedLogs.line
        XCTAssertTrue(has(lines[0], "hits", "1") && has(lines[0], "queued_total", "1"), lines[0])
        XCTAssertTrue(has(lines[1], "hits", "4") && has(lines[1], "queued_total", "3") && has(lines[1], "refused_total", "2"), lines[1])
        XCTAssertTrue(has(lines[1], "origin", "http://127.0.0.1:\(server.port)") && has(lines[1], "limit", "1"), lines[1])
        var answered = 0
        XCTAssertTrue(loop.spin(until: {
            while answered < self.held.count {
                self.held[answered].responder.sendJSON(200, "{}")
                answered += 1
            }
            return results == 6
        }, timeout: .seconds(10)), "answered \(answered), results \(results)")
    }

    /// A dial abandoned at the request's deadline gives its place back.
    func testAbandonedDialFreesItsPlace() throws {
        let hanging = try FullAcceptQueue()   // connects hang until released
        defer { hanging.close() }
        client.maxConnectionsPerOrigin = 1
        let origin = HTTPOrigin(useTLS: false, host: "127.0.0.1", port: hanging.port)
        var result: Result<HTTPClientResponse, HTTPError>?
        client.fetch(HTTPClientRequest(origin: origin, target: "/"), timeout: .milliseconds(200)) { result = $0 }
        XCTAssertEqual(client.connections(to: origin), 1)
        XCTAssertTrue(loop.spin(until: { result != nil }, timeout: .seconds(10)))
        XCTAssertEqual(client.connections(to: origin), 0)
    }

    /// A server that accepts the request and never answers: the request fails after the read
    /// idle timeout, not at its (much longer) deadline. A slow response that keeps coming is
    /// not cut. Before, only the overall deadline applied.
    func testResponseThatStopsArrivingFailsAfterTheReadIdleTimeout() throws {
        client.readIdleTimeout = .milliseconds(400)
        var silent: Result<HTTPClientResponse, HTTPError>?
        client.fetch(try request("/hold"), timeout: .seconds(60)) { silent = $0 }
        XCTAssertTrue(loop.spin(until: { silent != nil }, timeout: .seconds(20)), "still waiting for a server that said nothing")
        guard case .failure(.timedOut(phase: .silence, let gap))? = silent else { return XCTFail("\(String(describing: silent))") }
        XCTAssertEqual(gap, .milliseconds(400))

        var slow: Result<HTTPClientResponse, HTTPError>?
        client.fetch(try request("/drip"), timeout: .seconds(60)) { slow = $0 }
        XCTAssertTrue(loop.spin(until: { slow != nil }, timeout: .seconds(20)))
        guard case .success(let r)? = slow else { return XCTFail("\(String(describing: slow))") }
        XCTAssertEqual(r.bodyText, String(repeating: "x", count: 10))
    }

    /// A request may turn the read-idle limit off (a watch that is quiet for minutes, with its
    /// own timer), whatever the client's default.
    func testARequestCanTurnTheReadIdleTimeoutOff() throws {
        client.readIdleTimeout = .milliseconds(200)
        var result: Result<HTTPHeaders, HTTPError>?
        client.execute(try request("/hold"), timeout: nil, readIdleTimeout: .zero, onHead: { _ in }, onBody: { _ in },
                       onComplete: { result = $0 })
        XCTAssertTrue(loop.spin(until: { self.held.count == 1 }, timeout: .seconds(10)))
        loop.spin(until: { result != nil }, timeout: .seconds(1))
        XCTAssertNil(result, "a request without a read-idle limit was cut")
        held[0].responder.sendJSON(200, "{}")
        XCTAssertTrue(loop.spin(until: { result != nil }, timeout: .seconds(10)))
        guard case .success? = result else { return XCTFail("\(String(describing: result))") }
    }
}
