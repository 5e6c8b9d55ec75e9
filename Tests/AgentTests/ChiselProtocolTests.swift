import XCTest
@testable import Agent
@testable import Reactor

/// The chisel-v3 client's pure parts against chisel-v3-protocol.md and control-plane-api.md.
final class ChiselProtocolTests: XCTestCase {
    func testTunnelServerAddressForms() throws {
        let cases: [(String, TunnelEndpoint)] = [
            ("https://tunnel.pipeops.io", TunnelEndpoint(useTLS: true, host: "tunnel.pipeops.io", port: 443, path: "/")),
            ("http://h:8080/some/path?x=1", TunnelEndpoint(useTLS: false, host: "h", port: 8080, path: "/some/path?x=1")),
            ("wss://h", TunnelEndpoint(useTLS: true, host: "h", port: 443, path: "/")),
            ("ws://h:81", TunnelEndpoint(useTLS: false, host: "h", port: 81, path: "/")),
            ("tunnel.example:9000", TunnelEndpoint(useTLS: true, host: "tunnel.example", port: 9000, path: "/")),
            ("[::1]:18080", TunnelEndpoint(useTLS: true, host: "::1", port: 18080, path: "/")),
            ("http://[::1]", TunnelEndpoint(useTLS: false, host: "::1", port: 80, path: "/")),
        ]
        for (text, want) in cases {
            XCTAssertEqual(try TunnelEndpoint.parse(text), want, text)
        }
        // The Host header always carries the port, as gorilla/websocket sends it.
        XCTAssertEqual(try TunnelEndpoint.parse("https://tunnel.pipeops.io").hostHeader, "tunnel.pipeops.io:443")
        XCTAssertEqual(try TunnelEndpoint.parse("ws://[::1]").hostHeader, "[::1]:80")
        for bad in ["", "ftp://h", "https://", "h:0", "h:http", "[::1", "https://:443", "https://[]:443", "::1:80"] {
            XCTAssertThrowsError(try TunnelEndpoint.parse(bad), bad)
        }
    }

    func testConfigJSONIsExactlyWhatTheGoClientSends() {
        let r = ChiselRemote(localHost: "0.0.0.0", localPort: 18001, remoteHost: "127.0.0.1", remotePort: 18002)
        XCTAssertEqual(chiselConfigJSON(version: "1.11.5", remotes: [r]),
                       #"{"Version":"1.11.5","Remotes":[{"LocalHost":"0.0.0.0","LocalPort":"18001","LocalProto":"tcp","RemoteHost":"127.0.0.1","RemotePort":"18002","RemoteProto":"tcp","Socks":false,"Reverse":true,"Stdio":false}]}"#)
    }

    func testDisplayStringsAndTargets() {
        XCTAssertEqual(ChiselRemote(localHost: "0.0.0.0", localPort: 18001, remoteHost: "127.0.0.1", remotePort: 18002).display, "R:18001=>18002")
        XCTAssertEqual(ChiselRemote(localHost: "127.0.0.1", localPort: 18003, remoteHost: "127.0.0.1", remotePort: 18002).display, "R:127.0.0.1:18003=>18002")
        XCTAssertEqual(ChiselRemote(localHost: "0.0.0.0", localPort: 8000, remoteHost: "localhost", remotePort: 6443).display, "R:8000=>localhost:6443")
        XCTAssertEqual(ChiselRemote(localHost: "::1", localPort: 8000, remoteHost: "fd00::1", remotePort: 80).target, "[fd00::1]:80")
    }

    func testCredentialsSplitAtTheFirstColon() throws {
        XCTAssertEqual(try TunnelCredentials.decode(base64: Base64.encode(Array("user:pa:ss".utf8))), TunnelCredentials(user: "user", password: "pa:ss"))
        XCTAssertEqual(try TunnelCredentials.decode(base64: Base64.encode(Array("nocolon".utf8))), TunnelCredentials(user: "", password: ""))
        XCTAssertThrowsError(try TunnelCredentials.decode(base64: "not base64!"))
    }

    func testPollStatusesMapToDirectives() {
        func directive(_ s: String) -> TunnelDirective {
            TunnelDirective(TunnelStatusResponse(status: s, forwards: nil, credentials: nil, pollFrequency: nil,
                                                 tunnelServerAddr: nil, serverFingerprint: nil))
        }
        XCTAssertEqual(directive("idle"), .idle)
        for s in ["REQUIRED", "ready", "Active"] {
            guard case .required = directive(s) else { return XCTFail(s) }
        }
        XCTAssertEqual(directive("PAUSED"), .unknown("PAUSED"))
    }

    func testURLJoiningKeepsTheBasePath() {
        XCTAssertEqual(joinURL("https://host/prefix/", "/api/v1/x"), "https://host/prefix/api/v1/x")
        XCTAssertEqual(joinURL("https://host", "api/v1/x"), "https://host/api/v1/x")
    }

    func testBackoffDoublesWithJitterUpToTheCap() {
        var b = Backoff(initial: .milliseconds(100), maximum: .seconds(30))
        var last = TimeAmount.zero
        for i in 0..<12 {
            let d = b.next()
            let base = min(100 * Int64(1 << i), 30_000)
            XCTAssertLessThanOrEqual(d.milliseconds, base)
            XCTAssertGreaterThanOrEqual(d.milliseconds, base * 8 / 10 - 1)
            last = d
        }
        XCTAssertLessThanOrEqual(last, .seconds(30))
        b.reset()
        XCTAssertLessThanOrEqual(b.next(), .milliseconds(100))
    }

    func testTimeAmountReadsWellInLogs() {
        XCTAssertEqual("\(TimeAmount.seconds(30))", "30s")
        XCTAssertEqual("\(TimeAmount.milliseconds(250))", "250ms")
        XCTAssertEqual("\(TimeAmount.nanoseconds(1_384_747_901))", "1.38s")
        XCTAssertEqual("\(TimeAmount.nanoseconds(91_339_681))", "91ms")
    }
}
