import Foundation
import XCTest
@testable import Reactor

/// Our client against python's http.server, an aiohttp server, and tinyproxy as CONNECT proxy.
final class HTTPClientTests: XCTestCase {
    var loop: EventLoop!
    var client: HTTPClient!

    override func setUpWithError() throws {
        loop = try makeLoop()
        client = HTTPClient(loop: loop, connector: .tcp(loop: loop))
    }

    override func tearDown() {
        client?.closeIdle()
        client = nil
        loop = nil
    }

    private func fetch(_ request: HTTPClientRequest, timeout: TimeAmount = .seconds(20)) -> Result<HTTPClientResponse, HTTPError>? {
        var result: Result<HTTPClientResponse, HTTPError>?
        client.fetch(request, timeout: timeout) { result = $0 }
        loop.spin(until: { result != nil }, timeout: .seconds(30))
        return result
    }

    private func startAiohttp() throws -> (PeerProcess, Int)? {
        guard let py = Peers.require("python3") else { return nil }
        let p = try PeerProcess(py, [Peers.fixture("chunked_server.py")])
        guard let port = p.waitForPort() else {
            XCTFail("aiohttp fixture did not start: \(p.stderr)")
            p.stop()
            return nil
        }
        return (p, port)
    }

    func testPythonHTTPServer() throws {
        guard let py = Peers.require("python3") else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("www-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let content = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 31) })
        try content.write(to: dir.appendingPathComponent("file.bin"))
        // Pick a free port by binding 0, then hand it to the server.
        let probe = try TCPListener(loop: loop, address: loopback()) { fd, _ in close(fd) }
        let port = probe.port
        probe.close()
        let p = try PeerProcess(py, ["-m", "http.server", "--bind", "127.0.0.1", "--directory", dir.path, "\(port)"])
        defer { p.stop() }
        var result: Result<HTTPClientResponse, HTTPError>?
        // The server needs a moment to bind: retry refused connections for a few seconds.
        for _ in 0..<50 {
            result = fetch(try HTTPClientRequest(url: "http://127.0.0.1:\(port)/file.bin"))
            if case .failure(.connect(.refused))? = result { usleep(100_000); continue }
            break
        }
        guard case .success(let r)? = result else { return XCTFail("\(String(describing: result))") }
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(Data(r.body), content)
        guard case .success(let missing)? = fetch(try HTTPClientRequest(url: "http://localhost:\(port)/missing")) else { return XCTFail() }
        XCTAssertEqual(missing.status, 404)
    }

    func testAiohttpChunkedStreamingAndKeepAlive() throws {
        guard let (p, port) = try startAiohttp() else { return }
        defer { p.stop() }
        var chunks: [[UInt8]] = []
        var head: HTTPResponseHead?
        var done: Result<HTTPHeaders, HTTPError>?
        client.execute(try HTTPClientRequest(url: "http://127.0.0.1:\(port)/stream?n=50"), timeout: .seconds(20),
                       onHead: { head = $0 }, onBody: { chunks.append($0) }, onComplete: { done = $0 })
        XCTAssertTrue(loop.spin(until: { done != nil }))
        guard case .success? = done else { return XCTFail("\(String(describing: done))") }
        XCTAssertEqual(head?.headers["Transfer-Encoding"], "chunked")
        XCTAssertGreaterThan(chunks.count, 1, "the body should arrive in pieces")
        let text = String(decoding: chunks.flatMap { $0 }, as: UTF8.self)
        XCTAssertEqual(text, (0..<50).map { "line \($0)\n" }.joined())
        // Keep-alive: the next requests reuse the pooled connection.
        for _ in 0..<3 {
            guard case .success(let r)? = fetch(try HTTPClientRequest(url: "http://127.0.0.1:\(port)/hello")) else { return XCTFail() }
            XCTAssertEqual(r.bodyText, "hello from aiohttp")
        }
        let body = Array((0..<100_000).map { UInt8(truncatingIfNeeded: $0) })
        guard case .success(let echo)? = fetch(try HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(port)/echo", body: body)) else { return XCTFail() }
        XCTAssertEqual(echo.body, body)
        XCTAssertEqual(client.connectionsOpened, 1)
    }

    func testDeadline() throws {
        guard let (p, port) = try startAiohttp() else { return }
        defer { p.stop() }
        let r = fetch(try HTTPClientRequest(url: "http://127.0.0.1:\(port)/slow"), timeout: .milliseconds(300))
        guard case .failure(.timedOut(phase: .waitingForResponse, let after))? = r else { return XCTFail("\(String(describing: r))") }
        XCTAssertEqual(after, .milliseconds(300))
    }

    func testConnectRefused() throws {
        let probe = try TCPListener(loop: loop, address: loopback()) { fd, _ in close(fd) }
        let port = probe.port
        probe.close()
        let r = fetch(try HTTPClientRequest(url: "http://127.0.0.1:\(port)/"))
        guard case .failure(.connect(.refused(let target)))? = r else { return XCTFail("\(String(describing: r))") }
        XCTAssertEqual(target, "127.0.0.1:\(port)")
        let bad = fetch(try HTTPClientRequest(url: "http://no-such-host.invalid:80/"))
        guard case .failure? = bad else { return XCTFail() }
    }

    func testThroughTinyproxyCONNECT() throws {
        guard let tinyproxy = Peers.require("tinyproxy") else { return }
        guard let (p, port) = try startAiohttp() else { return }
        defer { p.stop() }
        let probe = try TCPListener(loop: loop, address: loopback()) { fd, _ in close(fd) }
        let proxyPort = probe.port
        probe.close()
        let conf = FileManager.default.temporaryDirectory.appendingPathComponent("tinyproxy-\(UUID().uuidString).conf")
        // No ConnectPort line: CONNECT to any port is allowed.
        try """
        Port \(proxyPort)
        Listen 127.0.0.1
        Timeout 30
        Allow 127.0.0.1
        MaxClients 10
        LogLevel Info
        """.write(to: conf, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: conf) }
        let proxy = try PeerProcess(tinyproxy, ["-d", "-c", conf.path])
        defer { proxy.stop() }
        client.proxies = try HTTPProxySettings.fromEnvironment(["HTTP_PROXY": "http://127.0.0.1:\(proxyPort)", "NO_PROXY": "example.com"])
        var result: Result<HTTPClientResponse, HTTPError>?
        for _ in 0..<50 {
            result = fetch(try HTTPClientRequest(url: "http://127.0.0.1:\(port)/hello"))
            if case .failure(.connect(.refused))? = result { usleep(100_000); continue }
            break
        }
        guard case .success(let r)? = result else { return XCTFail("\(String(describing: result)) \(proxy.stderr)") }
        XCTAssertEqual(r.bodyText, "hello from aiohttp")
        XCTAssertTrue((proxy.stderr + proxy.stdout).contains("CONNECT"), "the request should have gone through the proxy: \(proxy.stderr)")
    }

    func testProxySettings() throws {
        let s = try HTTPProxySettings.fromEnvironment(["https_proxy": "http://u%40x:p@10.0.0.1:3128", "NO_PROXY": ".svc, localhost,10.1.2.3:443"])
        XCTAssertEqual(s.httpsProxy, .init(host: "10.0.0.1", port: 3128, credentials: "u@x:p"))
        XCTAssertNil(s.httpProxy)
        XCTAssertNotNil(s.proxy(for: HTTPOrigin(useTLS: true, host: "api.example.com", port: 443)))
        XCTAssertNil(s.proxy(for: HTTPOrigin(useTLS: true, host: "kubernetes.default.svc", port: 443)))
        XCTAssertNil(s.proxy(for: HTTPOrigin(useTLS: true, host: "localhost", port: 6443)))
        XCTAssertNil(s.proxy(for: HTTPOrigin(useTLS: true, host: "10.1.2.3", port: 443)))
        XCTAssertNotNil(s.proxy(for: HTTPOrigin(useTLS: true, host: "10.1.2.3", port: 6443)))
        let (o, t) = try HTTPClientRequest.parseURL("https://[::1]:8443/a?b=1")
        XCTAssertEqual(o, HTTPOrigin(useTLS: true, host: "::1", port: 8443))
        XCTAssertEqual(t, "/a?b=1")
        XCTAssertEqual(o.hostHeader, "[::1]:8443")
    }

    /// Found by KubeconfigFuzz: a kubeconfig server "https://127.0.0.1:-0/23" became an origin
    /// with port 0 (Int() takes a sign). A URL's port is digits and names a real port; a
    /// listener's address may still say port 0.
    func testURLsWithASignedZeroOrMissingPortOrHostAreRefused() throws {
        for bad in ["https://127.0.0.1:-0/23", "https://127.0.0.1:+443", "http://h:0/", "http://h:/", "https://:443", "https://[]"] {
            XCTAssertThrowsError(try HTTPClientRequest.parseURL(bad), bad)
        }
        XCTAssertEqual(try HTTPClientRequest.parseURL("http://h:08080/x").0, HTTPOrigin(useTLS: false, host: "h", port: 8080))
        XCTAssertEqual(try SocketAddress.splitHostPort("0.0.0.0:0").port, 0)
        XCTAssertThrowsError(try SocketAddress.splitHostPort("0.0.0.0:-0"))
    }
}
