import Glibc
import Reactor

/// One check of `GET /api/status/connectivity` (agent-http-api.md): what it is called, what it
/// reaches (`host:port` or a URL, shown as is), and how.
struct ConnectivityCheck {
    enum Probe {
        /// Resolve a host name.
        case dns(host: String)
        /// Open a stream to an origin: TCP, or TCP and the TLS handshake when it uses TLS;
        /// through a proxy when one applies (the way the agent itself connects).
        case connect(HTTPOrigin, proxies: HTTPProxySettings)
        /// `GET` a URL; any 2xx is a pass.
        case httpGet(url: String)
        /// The Kubernetes API server's `/version`, with the agent's own credentials and trust.
        case kubernetesVersion(KubernetesClient)
    }

    let name: String
    let target: String
    let probe: Probe
}

/// What one check found. `error` says why it failed, in words a person understands.
struct ConnectivityCheckResult {
    let name: String
    let target: String
    let ok: Bool
    let latency: TimeAmount
    let error: String?

    var json: JSONValue {
        .object([JSONMember("name", .string(name)), JSONMember("target", .string(target)), JSONMember("ok", .bool(ok)),
                 JSONMember("latency_ms", .double((latency.seconds * 10_000).rounded() / 10)),
                 JSONMember("error", error.map { .string($0) } ?? .null)])
    }
}

/// The body of `GET /api/status/connectivity`.
struct ConnectivityReport {
    let checks: [ConnectivityCheckResult]
    let timestamp: String

    var healthy: Bool { checks.allSatisfy(\.ok) }

    var json: JSONValue {
        .object([JSONMember("overall_status", .string(healthy ? "healthy" : "degraded")),
                 JSONMember("checks", .array(checks.map(\.json))),
                 JSONMember("timestamp", .string(timestamp))])
    }
}

enum ConnectivityChecks {
    /// The checks that apply to this agent now, in report order. A check that does not apply is
    /// left out, not faked: no control plane (standalone), no TLS for an http:// one, no tunnel
    /// server until one is configured or allocated, no forwards while the tunnel is disabled.
    static func plan(config: AgentConfig, tunnelEndpoint: TunnelEndpoint?, proxies: HTTPProxySettings,
                     kubernetes: KubernetesClient? = nil) -> [ConnectivityCheck] {
        var checks: [ConnectivityCheck] = []
        let apiURL = config.pipeops.apiURL
        if !apiURL.isEmpty, let (origin, _) = try? HTTPClientRequest.parseURL(apiURL) {
            checks.append(ConnectivityCheck(name: "control_plane_dns", target: origin.host, probe: .dns(host: origin.host)))
            let tcp = HTTPOrigin(useTLS: false, host: origin.host, port: origin.port)
            checks.append(ConnectivityCheck(name: "control_plane_tcp", target: origin.authority, probe: .connect(tcp, proxies: proxies)))
            if origin.useTLS {
                checks.append(ConnectivityCheck(name: "control_plane_tls", target: origin.authority, probe: .connect(origin, proxies: proxies)))
            }
            // control-plane-api.md names no health endpoint: the base URL's /health.
            let health = joinURL(apiURL, "/health")
            checks.append(ConnectivityCheck(name: "control_plane_health", target: URLUserinfo.redacted(health), probe: .httpGet(url: health)))
        }
        if config.tunnel.enabled, let e = tunnelEndpoint {
            // Chisel goes through the proxies like the control plane; SSH mode connects directly.
            let origin = HTTPOrigin(useTLS: false, host: e.host, port: e.port)
            checks.append(ConnectivityCheck(name: "tunnel_server_tcp", target: origin.authority,
                                            probe: .connect(origin, proxies: config.tunnel.mode == .chisel ? proxies : .none)))
        }
        if config.tunnel.enabled {
            for f in config.tunnel.forwards {
                guard let (host, port) = try? SocketAddress.splitHostPort(f.localAddr) else { continue }
                checks.append(ConnectivityCheck(name: "forward_tcp:\(f.name)", target: f.localAddr,
                                                probe: .connect(HTTPOrigin(useTLS: false, host: host, port: port), proxies: .none)))
            }
        }
        if let k = kubernetes {
            let origin = k.access.server
            checks.append(ConnectivityCheck(name: "kubernetes_api", target: "\(origin.useTLS ? "https" : "http")://\(origin.authority)\(k.access.basePath)/version",
                                            probe: .kubernetesVersion(k)))
        }
        return checks
    }
}

/// Runs connectivity checks on the loop: all at once, each within its own deadline, none
/// waiting for another. One run at a time: a request that comes while checks are running gets
/// that run's report (a busy endpoint must not multiply the agent's outgoing connections).
final class ConnectivityChecker {
    unowned let loop: EventLoop
    let resolver: Resolver
    let connector: HTTPConnector
    let httpClient: HTTPClient
    let deadline: TimeAmount

    private var waiting: [(ConnectivityReport) -> Void] = []

    init(loop: EventLoop, resolver: Resolver, connector: HTTPConnector, httpClient: HTTPClient, deadline: TimeAmount = .seconds(3)) {
        self.loop = loop
        self.resolver = resolver
        self.connector = connector
        self.httpClient = httpClient
        self.deadline = deadline
    }

    /// Runs `checks` (or joins the run in progress) and reports once every check has finished.
    func report(_ checks: @autoclosure () -> [ConnectivityCheck], completion: @escaping (ConnectivityReport) -> Void) {
        waiting.append(completion)
        guard waiting.count == 1 else { return }
        let planned = checks()
        var results = [ConnectivityCheckResult?](repeating: nil, count: planned.count)
        var left = planned.count
        let finish = { [weak self] in
            guard let self else { return }
            let report = ConnectivityReport(checks: results.compactMap { $0 }, timestamp: Timestamp.now())
            let callbacks = self.waiting
            self.waiting = []
            for cb in callbacks { cb(report) }
        }
        if planned.isEmpty { loop.deferred(finish); return }
        for (i, check) in planned.enumerated() {
            run(check) { result in
                results[i] = result
                left -= 1
                if left == 0 { finish() }
            }
        }
    }

    // MARK: One check

    private func run(_ check: ConnectivityCheck, done: @escaping (ConnectivityCheckResult) -> Void) {
        let run = RunningCheck(loop: loop, check: check, done: done)
        run.timer = loop.schedule(in: deadline) { [weak run, deadline] in
            run?.finish(error: "timeout after \(Self.seconds(deadline))")
        }
        // The probe itself gets a little longer, so the deadline above is what reports.
        let slack = deadline + .seconds(1)
        switch check.probe {
        case .dns(let host):
            resolver.resolve(host: host, port: 0) { [weak run] result in
                switch result {
                case .success: run?.finish(error: nil)
                case .failure(let e): run?.finish(error: Self.describe(e))
                }
            }
        case .connect(let origin, let proxies):
            let dialer = StreamDialer.dial(loop: loop, origin: origin, connector: connector, proxies: proxies, timeout: slack) { [weak run] result in
                switch result {
                case .success(let stream):
                    stream.close(nil)
                    run?.finish(error: nil)
                case .failure(let e):
                    run?.finish(error: Self.describe(e))
                }
            }
            run.cancel = { dialer.cancel() }
        case .httpGet(let url):
            let request: HTTPClientRequest
            do { request = try HTTPClientRequest(url: url) } catch {
                run.finish(error: "\(error)")
                return
            }
            let task = httpClient.fetch(request, timeout: slack, maxBodyBytes: 64 * 1024) { [weak run] result in
                switch result {
                case .success(let r) where (200..<300).contains(r.status): run?.finish(error: nil)
                case .success(let r): run?.finish(error: "HTTP \(r.status) \(HTTPStatus.reason(r.status))")
                case .failure(let e): run?.finish(error: Self.describe(e))
                }
            }
            run.cancel = { task.cancel() }
        case .kubernetesVersion(let client):
            let call = client.get("/version", verb: "get", timeout: slack) { [weak run] result in
                switch result {
                case .success: run?.finish(error: nil)
                case .failure(let e): run?.finish(error: e.description)
                }
            }
            run.cancel = { call.cancel() }
        }
    }

    /// `3 s`, `0.5 s`.
    static func seconds(_ t: TimeAmount) -> String {
        let ms = t.milliseconds
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(Double(ms) / 1000) s"
    }

    /// "cannot resolve 'x': no such name (NXDOMAIN)", "… no answer from DNS server 10.0.0.10:53 within 5s".
    static func describe(_ e: ResolveError) -> String { e.description }

    /// The whole cause chain: "connect to 10.0.0.5:443: ECONNREFUSED (Connection refused)".
    static func describe(_ e: any Error) -> String { ErrorChain.render(e) }
}

/// A check in progress: finishes once (result, failure or deadline, whichever is first) and
/// then lets go of its probe.
private final class RunningCheck {
    let loop: EventLoop
    let check: ConnectivityCheck
    let started: Deadline
    var timer: LoopTimer?
    var cancel: (() -> Void)?
    private var done: ((ConnectivityCheckResult) -> Void)?
    private var keepAlive: RunningCheck?

    init(loop: EventLoop, check: ConnectivityCheck, done: @escaping (ConnectivityCheckResult) -> Void) {
        self.loop = loop
        self.check = check
        self.done = done
        started = loop.now
        keepAlive = self
    }

    func finish(error: String?) {
        guard let done else { return }
        self.done = nil
        timer?.cancel()
        timer = nil
        let c = cancel
        cancel = nil
        if error != nil { c?() }
        keepAlive = nil
        done(ConnectivityCheckResult(name: check.name, target: check.target, ok: error == nil,
                                     latency: Deadline.now() - started, error: error))
    }
}
