import Foundation
import Glibc
import XCTest
@testable import Agent
@testable import Reactor

/// `/metrics`, `/api/metrics/runtime` and `/api/status/features` of a real (standalone) agent,
/// asked over HTTP on its own loop.
final class TelemetryRoutesTests: XCTestCase {
    var loop: EventLoop!
    var agent: Agent!

    private func startAgent(_ configure: (inout AgentConfig) -> Void = { _ in }) throws {
        loop = try EventLoop()
        var config = AgentConfig.defaults(environment: [:])
        config.pipeops.apiURL = ""
        config.agent.port = 0
        config.tunnel.enabled = false
        config.state.path = "/tmp/pipeops-agent-telemetry-\(getpid())/state.json"
        config.server.apiToken = Self.token
        configure(&config)
        agent = try Agent(loop: loop, config: config, environment: [:])
        agent.start()
        XCTAssertNotNil(agent.server)
    }

    override func tearDown() {
        if let agent {
            var done = false
            agent.shutdown(signal: 15) { done = true }
            loop.run(until: { done }, timeout: .seconds(5))
        }
        agent = nil
        loop = nil
    }

    static let token = "telemetry-test-token"

    /// A GET with the API token (`/api/*` needs it), or without when `token` is nil.
    private func get(_ path: String, token: String? = TelemetryRoutesTests.token) throws -> HTTPClientResponse {
        var result: Result<HTTPClientResponse, HTTPError>?
        var headers = HTTPHeaders()
        if let token { headers.add("Authorization", "Bearer \(token)") }
        let request = try HTTPClientRequest(url: "http://127.0.0.1:\(try XCTUnwrap(agent.server).port)\(path)", headers: headers)
        agent.httpClient.fetch(request, timeout: .seconds(10)) { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: .seconds(15)), "GET \(path)")
        return try XCTUnwrap(result).get()
    }

    private func json(_ path: String) throws -> [String: Any] {
        let r = try get(path)
        XCTAssertEqual(r.status, 200, r.bodyText)
        XCTAssertEqual(r.headers["Content-Type"], "application/json")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], r.bodyText)
    }

    /// The lines of `/metrics` that are samples of `name` (any labels).
    private func samples(_ text: String, _ name: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
    }

    func testRequestsAreCountedByRouteAndStatusAndAMetricsAnswerCountsFromTheNextScrape() throws {
        try startAgent()
        XCTAssertEqual(try get("/health").status, 200)
        XCTAssertEqual(try get("/health").status, 200)
        XCTAssertEqual(try get("/no/such/path?x=1").status, 404)
        XCTAssertEqual(try get("/another-unknown").status, 404)
        // Refused by the access check, counted under the route it was for.
        XCTAssertEqual(try get("/api/metrics/runtime", token: nil).status, 401)
        XCTAssertEqual(try get("/api/metrics/runtime", token: "wrong").status, 401)
        XCTAssertEqual(try get("/api/no-such-thing", token: nil).status, 401)
        let first = try get("/metrics", token: nil)
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(first.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertEqual(samples(first.bodyText, "pipeops_http_requests_total"), [
            #"pipeops_http_requests_total{endpoint="/health",code="200"} 2"#,
            #"pipeops_http_requests_total{endpoint="other",code="404"} 2"#,
            #"pipeops_http_requests_total{endpoint="/api/metrics/runtime",code="401"} 2"#,
            #"pipeops_http_requests_total{endpoint="other",code="401"} 1"#,
        ])
        let second = try get("/metrics").bodyText
        XCTAssertTrue(samples(second, "pipeops_http_requests_total").contains(#"pipeops_http_requests_total{endpoint="/metrics",code="200"} 1"#), second)
    }

    /// Every name agent-http-api.md lists is there with HELP and TYPE, and what the Kubernetes
    /// summary and the realtime clients say shows in theirs (API calls: Tests/e2e/test_metrics.py,
    /// against the Kubernetes API test server).
    func testEveryDocumentedNameHasHelpTypeAndTheHooksFeedTheirs() throws {
        try startAgent()
        let text = try get("/metrics").bodyText
        let names = ["pipeops_agent_status", "pipeops_websocket_connections", "pipeops_sse_connections",
                     "pipeops_http_requests_total", "pipeops_cluster_nodes_total", "pipeops_cluster_pods_total",
                     "pipeops_agent_uptime_seconds", "pipeops_kubernetes_api_calls_total", "pipeops_tunnel_up",
                     "pipeops_tunnel_reconnects_total", "pipeops_tunnel_connections_active", "pipeops_tunnel_connections_total",
                     "pipeops_tunnel_bytes_total", "pipeops_tunnel_dial_errors_total", "process_resident_memory_bytes",
                     "process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_start_time_seconds"]
        for n in names {
            XCTAssertTrue(text.contains("\n# HELP \(n) ") || text.hasPrefix("# HELP \(n) "), "no HELP for \(n)")
            XCTAssertTrue(text.contains("\n# TYPE \(n) "), "no TYPE for \(n)")
        }
        XCTAssertEqual(samples(text, "pipeops_agent_status"), ["pipeops_agent_status 1"])   // standalone
        // No Kubernetes client here (no kubeconfig, not in a pod): no cluster samples, not zeros.
        XCTAssertEqual(samples(text, "pipeops_cluster_nodes_total"), [])
        XCTAssertEqual(samples(text, "pipeops_cluster_pods_total"), [])
        XCTAssertEqual(samples(text, "pipeops_kubernetes_api_calls_total"), [])
        XCTAssertEqual(samples(text, "pipeops_tunnel_up"), ["pipeops_tunnel_up 0"])
        XCTAssertEqual(samples(text, "pipeops_tunnel_bytes_total"), [])   // no tunnel, no forwards

        agent.kubernetesSummary = { KubernetesSummary(available: true, nodes: 3, pods: 41) }
        for _ in 0..<4 { XCTAssertTrue(agent.realtimeClients.open(.webSocket)) }
        for _ in 0..<2 { XCTAssertTrue(agent.realtimeClients.open(.eventStream)) }
        let fed = try get("/metrics").bodyText
        XCTAssertEqual(samples(fed, "pipeops_cluster_nodes_total"), ["pipeops_cluster_nodes_total 3"])
        XCTAssertEqual(samples(fed, "pipeops_cluster_pods_total"), ["pipeops_cluster_pods_total 41"])
        XCTAssertEqual(samples(fed, "pipeops_websocket_connections"), ["pipeops_websocket_connections 4"])
        XCTAssertEqual(samples(fed, "pipeops_sse_connections"), ["pipeops_sse_connections 2"])
        let runtime = try json("/api/metrics/runtime")
        let connections = try XCTUnwrap(runtime["connections"] as? [String: Any])
        XCTAssertEqual(connections["websocket"] as? Int, 4)
        XCTAssertEqual(connections["sse"] as? Int, 2)
    }

    /// Requests the agent's own HTTP client held or refused at its per-origin cap are counted
    /// in `pipeops_http_client_requests_limited_total`, by client and outcome.
    func testRequestsHeldOrRefusedAtTheClientsConnectionCapAreCounted() throws {
        try startAgent()
        let client = agent.httpClient
        client.maxConnectionsPerOrigin = 1
        client.maxWaitingPerOrigin = 1
        let health = try HTTPClientRequest(url: "http://127.0.0.1:\(try XCTUnwrap(agent.server).port)/health")
        // The first dials the one connection allowed, the second waits for it, the third finds
        // the queue full and fails at once.
        var results: [Result<HTTPClientResponse, HTTPError>] = []
        for _ in 0..<3 { client.fetch(health, timeout: .seconds(10)) { results.append($0) } }
        XCTAssertTrue(loop.run(until: { results.count == 3 }, timeout: .seconds(15)))
        XCTAssertEqual(results.filter { (try? $0.get().status) == 200 }.count, 2, "\(results)")
        let text = try get("/metrics").bodyText
        XCTAssertTrue(text.contains("\n# TYPE pipeops_http_client_requests_limited_total counter\n"))
        XCTAssertEqual(samples(text, "pipeops_http_client_requests_limited_total"), [
            #"pipeops_http_client_requests_limited_total{client="control_plane",outcome="queued"} 1"#,
            #"pipeops_http_client_requests_limited_total{client="control_plane",outcome="refused"} 1"#])
    }

    func testRuntimeReportsTheProcessTheLoopAndTheConnections() throws {
        try startAgent()
        // Timers that fire give the loop lag samples.
        var fired = 0
        for i in 1...5 { loop.schedule(in: .milliseconds(Int64(i))) { fired += 1 } }
        XCTAssertTrue(loop.run(until: { fired == 5 }, timeout: .seconds(5)))
        let r = try json("/api/metrics/runtime")
        let memory = try XCTUnwrap(r["memory"] as? [String: Any])
        let rss = try XCTUnwrap(memory["rss_bytes"] as? Int)
        XCTAssertGreaterThan(rss, 1 << 20)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(memory["peak_rss_bytes"] as? Int), rss)
        XCTAssertGreaterThan(try XCTUnwrap(memory["heap_bytes"] as? Int), 0)
        let cpu = try XCTUnwrap(r["cpu"] as? [String: Any])
        XCTAssertNotNil(cpu["user_seconds"] as? Double)
        XCTAssertNotNil(cpu["system_seconds"] as? Double)
        let fds = try XCTUnwrap(r["fds"] as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(fds["open"] as? Int), 3)
        var rl = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        XCTAssertEqual(fds["limit"] as? Int, Int(rl.rlim_cur))
        let l = try XCTUnwrap(r["loop"] as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(l["iterations"] as? Int), 0)
        XCTAssertGreaterThan(try XCTUnwrap(l["events"] as? Int), 0)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(l["timers"] as? Int), 5)
        let p50 = try XCTUnwrap(l["lag_ms_p50"] as? Double), p99 = try XCTUnwrap(l["lag_ms_p99"] as? Double)
        XCTAssertTrue(p50 >= 0 && p99 >= p50, "p50 \(p50) p99 \(p99)")
        let c = try XCTUnwrap(r["connections"] as? [String: Any])
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(c["http"] as? Int), 1)   // this request's own connection
        XCTAssertEqual(c["tunnel_channels"] as? Int, 0)
        XCTAssertGreaterThan(try XCTUnwrap(r["uptime_seconds"] as? Double), 0)
        let stamp = try XCTUnwrap(r["timestamp"] as? String)
        XCTAssertNotNil(Timestamp.parseRFC3339(stamp), stamp)
    }

    func testFeaturesFollowWhatRunsAndTheVersionFollowsTheFeatures() throws {
        try startAgent()
        let first = try json("/api/status/features")
        let features = try XCTUnwrap(first["features"] as? [String: Any])
        XCTAssertEqual(features["tunnel"] as? Bool, false)
        XCTAssertNil(features["tunnel_mode"])
        XCTAssertEqual(features["multi_port_forward"] as? Bool, false)
        XCTAssertEqual(features["control_plane"] as? Bool, false)
        XCTAssertEqual(features["metrics"] as? Bool, true)
        XCTAssertEqual(features["runtime_metrics"] as? Bool, true)
        XCTAssertEqual(features["kubernetes"] as? Bool, false)
        // The hub, SSE, dashboard and connectivity routes are installed (on by default).
        for f in ["websocket", "sse", "log_streaming", "dashboard", "connectivity_testing"] {
            XCTAssertEqual(features[f] as? Bool, true, f)
        }
        XCTAssertNotNil(features["io_uring"] as? Bool)
        let version = try XCTUnwrap(first["feature_version"] as? String)
        XCTAssertTrue(version.hasPrefix(AgentVersion.version + "+"), version)
        XCTAssertEqual(try json("/api/status/features")["feature_version"] as? String, version)

        agent.kubernetesSummary = { KubernetesSummary(available: true) }
        let second = try json("/api/status/features")
        XCTAssertEqual((second["features"] as? [String: Any])?["kubernetes"] as? Bool, true)
        XCTAssertNotEqual(second["feature_version"] as? String, version)
    }

    /// `features.runtime_metrics: false` leaves the route out, and the features say so (as they
    /// do for a WebSocket hub switched off). An idle
    /// chisel tunnel (no control plane asks for it here) is a tunnel with its mode and forwards,
    /// whose per-forward metrics read 0.
    func testSwitchedOffRuntimeMetricsAreNotServedAndAnIdleTunnelIsReported() throws {
        try startAgent { config in
            config.features.runtimeMetrics = false
            config.server.enableWebSocket = false
            config.tunnel.enabled = true
        }
        XCTAssertEqual(try get("/api/metrics/runtime").status, 404)
        let features = try XCTUnwrap(try json("/api/status/features")["features"] as? [String: Any])
        XCTAssertEqual(features["runtime_metrics"] as? Bool, false)
        XCTAssertEqual(features["websocket"] as? Bool, false)
        XCTAssertEqual(features["sse"] as? Bool, true)
        XCTAssertEqual(features["tunnel"] as? Bool, true)
        XCTAssertEqual(features["tunnel_mode"] as? String, "chisel")
        XCTAssertEqual(features["multi_port_forward"] as? Bool, true)
        let text = try get("/metrics").bodyText
        XCTAssertEqual(samples(text, "pipeops_tunnel_up"), ["pipeops_tunnel_up 0"])
        XCTAssertEqual(samples(text, "pipeops_tunnel_bytes_total").count, 6)   // 3 default forwards, 2 directions
        XCTAssertTrue(samples(text, "pipeops_tunnel_bytes_total").allSatisfy { $0.hasSuffix(" 0") })
    }
}
