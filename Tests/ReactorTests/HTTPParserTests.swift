import XCTest
@testable import Reactor

final class HTTPParserTests: XCTestCase {
    private func events(_ kind: HTTPParser.Kind = .request, _ text: String, limits: HTTPParser.Limits = .init(),
                        method: String = "GET", eof: Bool = false, byteAtATime: Bool = false) throws(HTTPParseError) -> [HTTPParserEvent] {
        var p = HTTPParser(kind: kind, limits: limits)
        p.requestMethod = method
        var out: [HTTPParserEvent] = []
        let bytes = Array(text.utf8)
        let pieces: [[UInt8]] = byteAtATime ? bytes.map { [$0] } : [bytes]
        for piece in pieces {
            p.feed(piece)
            while let e = try p.next() { out.append(e) }
        }
        if eof {
            p.feedEOF()
            while let e = try p.next() { out.append(e) }
        }
        return merged(out)
    }

    /// Joins consecutive body events, so tests don't depend on how bytes were split.
    private func merged(_ events: [HTTPParserEvent]) -> [HTTPParserEvent] {
        var out: [HTTPParserEvent] = []
        for e in events {
            if case .body(let b) = e, case .body(let prev)? = out.last {
                out[out.count - 1] = .body(prev + b)
            } else {
                out.append(e)
            }
        }
        return out
    }

    private func parseError(_ text: String, limits: HTTPParser.Limits = .init()) -> HTTPParseError? {
        do { _ = try events(.request, text, limits: limits); return nil } catch { return error }
    }

    func testSimpleGet() throws {
        let e = try events(.request, "GET /health?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent:  t  \r\n\r\n")
        guard case .requestHead(let h) = e.first else { return XCTFail("no head: \(e)") }
        XCTAssertEqual(h.method, "GET")
        XCTAssertEqual(h.path, "/health")
        XCTAssertEqual(h.query, "x=1")
        XCTAssertEqual(h.headers["user-agent"], "t")
        XCTAssertTrue(h.keepAlive)
        XCTAssertEqual(e.count, 2)
        XCTAssertEqual(e.last, .end(trailers: HTTPHeaders()))
    }

    func testPipelinedRequestsByteAtATime() throws {
        let text = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.0\r\n\r\n"
        for slow in [false, true] {
            let e = try events(.request, text, byteAtATime: slow)
            XCTAssertEqual(e.count, 5, "\(e)")
            XCTAssertEqual(e[1], .body(Array("hello".utf8)))
            guard case .requestHead(let b) = e[3] else { return XCTFail() }
            XCTAssertEqual(b.target, "/b")
            XCTAssertEqual(b.version, .http1_0)
            XCTAssertFalse(b.keepAlive)
        }
    }

    func testChunkedWithTrailersAndExtensions() throws {
        let text = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n 0123456789\r\n0\r\nX-Sum: 42\r\n\r\n"
        for slow in [false, true] {
            let e = try events(.request, text.replacingOccurrences(of: "A\r\n 0123456789", with: "a\r\n0123456789"), byteAtATime: slow)
            XCTAssertEqual(e[1], .body(Array("hello0123456789".utf8)))
            guard case .end(let t) = e[2] else { return XCTFail("\(e)") }
            XCTAssertEqual(t["x-sum"], "42")
        }
    }

    func testLimits() {
        let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 17000) + "\r\n\r\n"
        XCTAssertEqual(parseError(big)?.status, 431)
        let unterminated = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 17000)
        XCTAssertEqual(parseError(unterminated)?.status, 431)
        let many = "GET / HTTP/1.1\r\n" + (0..<101).map { "H\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertEqual(parseError(many)?.status, 431)
        let hundred = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<99).map { "H\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertNil(parseError(hundred))
        XCTAssertEqual(parseError("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")?.status, 413)
        let chunks = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: "8000\r\n" + String(repeating: "x", count: 0x8000) + "\r\n", count: 40)
        XCTAssertEqual(parseError(chunks)?.status, 413)
    }

    func testMalformedIs400() {
        for bad in ["GET\r\n\r\n", "GET / HTTP/1.1 extra\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n", "GET / HTTX/1.1\r\n\r\n",
                    "GET / HTTP/1.1\r\nNoColon\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
                    "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                    "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                    "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                    "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"] {
            XCTAssertEqual(parseError(bad)?.status, 400, bad)
        }
        XCTAssertEqual(parseError("GET / HTTP/2.0\r\n\r\n")?.status, 505)
        XCTAssertEqual(parseError("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")?.status, 501)
    }

    /// RFC 9112 §3.2: exactly one Host in HTTP/1.1; HTTP/1.0 may omit it. Before, both passed.
    func testHostHeaderIsRequiredOnceInHTTP11() throws {
        let missing = parseError("GET /health HTTP/1.1\r\n\r\n")
        XCTAssertEqual(missing?.status, 400)
        XCTAssertTrue(missing?.message.contains("no Host header") ?? false, "\(String(describing: missing))")
        let twice = parseError("GET /health HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n")
        XCTAssertEqual(twice?.status, 400)
        XCTAssertTrue(twice?.message.contains("2 Host header fields") ?? false, "\(String(describing: twice))")
        XCTAssertNil(parseError("GET /health HTTP/1.0\r\n\r\n"))
        XCTAssertNil(parseError("GET /health HTTP/1.1\r\nHost: a\r\n\r\n"))
        // An empty Host is allowed (RFC 9112 §3.2, for a URI without an authority).
        XCTAssertNil(parseError("GET /health HTTP/1.1\r\nHost:\r\n\r\n"))
    }

    /// The chunk-size line limit holds when the line arrives whole, LF included. Before, it was
    /// checked only while the LF had not arrived, so a 5 KB extension sent at once passed.
    func testLongChunkLineIsRefusedEvenWhenItArrivesWhole() throws {
        let ext = ";x=" + String(repeating: "a", count: 5000)
        let request = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\(ext)\r\nhello\r\n0\r\n\r\n"
        let error = parseError(request)
        XCTAssertEqual(error?.status, 400)
        XCTAssertTrue(error?.message.contains("chunk size line longer than 1024 bytes") ?? false, "\(String(describing: error))")
        // At the limit it is fine.
        let fits = ";x=" + String(repeating: "a", count: 1024 - 1 - 3 - 1)   // "5" + ext + CR = 1024 bytes before LF
        XCTAssertNil(parseError("POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\(fits)\r\nhello\r\n0\r\n\r\n"))
    }

    func testResponses() throws {
        // HEAD, 204 and 304 have no body even with a Content-Length.
        var e = try events(.response, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method: "HEAD")
        XCTAssertEqual(e.count, 2)
        e = try events(.response, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n")
        XCTAssertEqual(e.count, 2)
        e = try events(.response, "HTTP/1.1 304 Not Modified\r\n\r\n")
        XCTAssertEqual(e.count, 2)
        // Interim 100 is skipped; read-until-close body.
        e = try events(.response, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nall of it", eof: true)
        guard case .responseHead(let h) = e[0] else { return XCTFail() }
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(e[1], .body(Array("all of it".utf8)))
        XCTAssertEqual(e.count, 3)
        // 101 stops parsing; what follows is handed over.
        var p = HTTPParser(kind: .response)
        p.feed(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\u{81}\u{0}".utf8))
        XCTAssertNotNil(try p.next())
        XCTAssertNotNil(try p.next())
        XCTAssertNil(try p.next())
        XCTAssertTrue(p.isStopped)
        XCTAssertEqual(p.takeBufferedBytes().count, 3)
        // Truncated fixed body is an error.
        XCTAssertThrowsError(try events(.response, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", eof: true))
    }

    func testWriter() {
        var out: [UInt8] = []
        var h = HTTPHeaders()
        h.add("Host", "x")
        HTTPWriter.appendRequestHead(HTTPRequestHead(method: "GET", target: "/", headers: h), into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        out = []
        Array("hello, world!!!!!".utf8).withUnsafeBytes { HTTPWriter.appendChunk($0, into: &out) }
        HTTPWriter.appendLastChunk(into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "11\r\nhello, world!!!!!\r\n0\r\n\r\n")
    }
}
