import XCTest
@testable import Agent
@testable import Reactor

/// Which checks `/api/status/connectivity` runs: those that apply, none faked
/// (agent-http-api.md). The checks themselves run against real peers in e2e/test_connectivity.py.
final class ConnectivityPlanTests: XCTestCase {
    private func names(_ config: AgentConfig, tunnel: TunnelEndpoint? = nil) -> [String] {
        ConnectivityChecks.plan(config: config, tunnelEndpoint: tunnel, proxies: .none).map(\.name)
    }

    func testHTTPSControlPlaneTunnelAndForwards() throws {
        var config = AgentConfig()
        config.pipeops.apiURL = "https://admin:pw@api.example.com/prefix"
        config.tunnel.forwards = [TunnelForward(name: "kubernetes-api", localAddr: "localhost:6443")]
        let tunnel = TunnelEndpoint(useTLS: true, host: "tunnel.example.com", port: 443, path: "")
        let plan = ConnectivityChecks.plan(config: config, tunnelEndpoint: tunnel, proxies: .none)
        XCTAssertEqual(plan.map(\.name), ["control_plane_dns", "control_plane_tcp", "control_plane_tls", "control_plane_health",
                                          "tunnel_server_tcp", "forward_tcp:kubernetes-api"])
        XCTAssertEqual(plan.map(\.target), ["api.example.com", "api.example.com:443", "api.example.com:443",
                                            "https://***@api.example.com/prefix/health", "tunnel.example.com:443", "localhost:6443"])
    }

    func testChecksThatDoNotApplyAreLeftOut() {
        var standalone = AgentConfig()
        standalone.pipeops.apiURL = ""
        standalone.tunnel.forwards = [TunnelForward(name: "web", localAddr: "127.0.0.1:8080")]
        // No control plane; the tunnel server is unknown until configured or allocated.
        XCTAssertEqual(names(standalone), ["forward_tcp:web"])
        var plain = AgentConfig()
        plain.pipeops.apiURL = "http://127.0.0.1:9000"
        plain.tunnel.enabled = false
        // http://: no TLS; tunnel disabled: no tunnel server and no forwards, even if known.
        XCTAssertEqual(names(plain, tunnel: TunnelEndpoint(useTLS: false, host: "127.0.0.1", port: 8000, path: "")),
                       ["control_plane_dns", "control_plane_tcp", "control_plane_health"])
    }

    /// A request that comes while checks run gets that run's report: no second set of probes.
    func testConcurrentRequestsShareOneRun() throws {
        let loop = try EventLoop()
        let resolver = try Resolver(loop: loop)
        let checker = ConnectivityChecker(loop: loop, resolver: resolver, connector: .tcp(loop: loop),
                                          httpClient: HTTPClient(loop: loop, connector: .tcp(loop: loop)))
        var planned = 0
        func plan() -> [ConnectivityCheck] {
            planned += 1
            return [ConnectivityCheck(name: "dns", target: "localhost", probe: .dns(host: "localhost"))]
        }
        var reports: [ConnectivityReport] = []
        checker.report(plan()) { reports.append($0) }
        checker.report(plan()) { reports.append($0) }
        XCTAssertTrue(loop.run(until: { reports.count == 2 }, timeout: .seconds(5)))
        XCTAssertEqual(planned, 1)
        XCTAssertEqual(reports.map { $0.checks.map(\.ok) }, [[true], [true]])
        XCTAssertEqual(reports[0].json, reports[1].json)
        // The next request runs the checks again.
        checker.report(plan()) { reports.append($0) }
        XCTAssertTrue(loop.run(until: { reports.count == 3 }, timeout: .seconds(5)))
        XCTAssertEqual(planned, 2)
    }
}
