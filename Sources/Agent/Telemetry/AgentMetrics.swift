import Reactor

extension Telemetry {
    /// Registers every metric agent-http-api.md names (the architecture document's eight, the
    /// tunnel's, the standard process ones) and the counters of what the limits refused. Values
    /// are read from `agent` when scraped. Called once, when the routes are installed.
    func registerAgentMetrics(_ agent: Agent) {
        registry.register("pipeops_agent_status",
                          help: "1 while the agent runs and is registered with the control plane (or runs standalone), else 0.",
                          type: .gauge) { [unowned agent] in .bool(agent.controlPlane?.isRegistered ?? true) }
        registry.register("pipeops_websocket_connections", help: "Open WebSocket connections to the agent's hub (/ws).",
                          type: .gauge) { [unowned agent] in .int(agent.realtimeClients.webSockets) }
        registry.register("pipeops_sse_connections", help: "Open Server-Sent Event streams (/api/realtime/*).",
                          type: .gauge) { [unowned agent] in .int(agent.realtimeClients.eventStreams) }
        registry.register(httpRequests)
        registry.register("pipeops_cluster_nodes_total",
                          help: "Nodes in the cluster as the agent's Kubernetes client sees them; no sample before its first sync or without a client. Untyped: a count, not a counter.",
                          type: .untyped) { [unowned agent] in agent.kubernetesSummary().nodes.map { .int($0) } }
        registry.register("pipeops_cluster_pods_total",
                          help: "Pods in the cluster as the agent's Kubernetes client sees them; no sample before its first sync or without a client. Untyped: a count, not a counter.",
                          type: .untyped) { [unowned agent] in agent.kubernetesSummary().pods.map { .int($0) } }
        registry.register("pipeops_agent_uptime_seconds", help: "Seconds since the agent started.",
                          type: .gauge) { [unowned self] in .number(self.uptime.seconds) }
        registry.register("pipeops_http_connections_shed_total",
                          help: "Idle keep-alive connections the agent's HTTP server closed to make room at its connection limit.",
                          type: .counter) { [unowned agent] in .count(agent.server?.shedConnections ?? 0) }
        registry.register("pipeops_http_connections_refused_total",
                          help: "Connections the agent's HTTP server answered 503 at its connection limit (none idle to shed).",
                          type: .counter) { [unowned agent] in .count(agent.server?.rejectedConnections ?? 0) }
        registry.register(HTTPClientLimitMetrics(agent: agent))
        registry.register(KubernetesCallMetrics(agent: agent))
        registry.register(TunnelMetrics(agent: agent))
        registry.register(ProcessMetrics(startTime: processStartTime))
    }
}

/// The tunnel's families, from one look at the manager per scrape. Without a tunnel (disabled,
/// or an SSH tunnel that could not start) it is down and the per-forward families are empty.
final class TunnelMetrics: MetricCollector {
    unowned let agent: Agent
    let up = MetricDescriptor("pipeops_tunnel_up", help: "1 while the tunnel is connected, else 0.", type: .gauge)
    let reconnects = MetricDescriptor("pipeops_tunnel_reconnects_total",
                                      help: "Times the tunnel dropped or failed to connect and a reconnect was scheduled.", type: .counter)
    let active = MetricDescriptor("pipeops_tunnel_connections_active", help: "Tunnelled connections open now, by forward.", type: .gauge)
    let total = MetricDescriptor("pipeops_tunnel_connections_total",
                                 help: "Tunnelled connections bridged to the forward's local address, by forward.", type: .counter)
    let bytes = MetricDescriptor("pipeops_tunnel_bytes_total",
                                 help: "Bytes carried by tunnelled connections, counted as they move (open connections included): direction \"in\" from the tunnel to the local service, \"out\" back.",
                                 type: .counter)
    let dialErrors = MetricDescriptor("pipeops_tunnel_dial_errors_total",
                                      help: "Tunnelled connections whose local address could not be reached, by forward.", type: .counter)
    let refused = MetricDescriptor("pipeops_tunnel_channels_refused_total",
                                   help: "Tunnel channels refused with \"resource shortage\", by forward and limit (tunnel.max_channels: \"channels\", tunnel.max_pending_dials: \"pending_dials\").",
                                   type: .counter)

    struct ForwardLabels {
        var forward: [UInt8]
        var bytesIn: [UInt8]
        var bytesOut: [UInt8]
        var refusedChannels: [UInt8]
        var refusedDials: [UInt8]
    }
    /// Each forward's label sets, rendered the first time it is seen (forwards come from the
    /// configuration: a bounded set).
    private var labels: [String: ForwardLabels] = [:]

    init(agent: Agent) { self.agent = agent }

    private func labels(_ forward: String) -> ForwardLabels {
        if let l = labels[forward] { return l }
        let l = ForwardLabels(forward: PrometheusText.labels(names: ["forward"], values: [forward]),
                              bytesIn: PrometheusText.labels(names: ["forward", "direction"], values: [forward, "in"]),
                              bytesOut: PrometheusText.labels(names: ["forward", "direction"], values: [forward, "out"]),
                              refusedChannels: PrometheusText.labels(names: ["forward", "limit"], values: [forward, "channels"]),
                              refusedDials: PrometheusText.labels(names: ["forward", "limit"], values: [forward, "pending_dials"]))
        labels[forward] = l
        return l
    }

    func collect(into text: inout PrometheusText) {
        let tunnel = agent.tunnel
        let forwards = (tunnel?.stats ?? [:]).sorted { $0.key < $1.key }.map { (labels: labels($0.key), stats: $0.value) }
        text.appendHeader(up)
        text.appendSample(up, value: .bool(tunnel?.phase == .connected))
        text.appendHeader(reconnects)
        text.appendSample(reconnects, value: .count(tunnel?.reconnects ?? 0))
        text.appendHeader(active)
        for f in forwards { text.appendSample(active, labels: f.labels.forward, value: .int(f.stats.activeConnections)) }
        text.appendHeader(total)
        for f in forwards { text.appendSample(total, labels: f.labels.forward, value: .count(f.stats.totalConnections)) }
        text.appendHeader(bytes)
        for f in forwards {
            text.appendSample(bytes, labels: f.labels.bytesIn, value: .count(f.stats.bytesIn))
            text.appendSample(bytes, labels: f.labels.bytesOut, value: .count(f.stats.bytesOut))
        }
        text.appendHeader(dialErrors)
        for f in forwards { text.appendSample(dialErrors, labels: f.labels.forward, value: .count(f.stats.dialErrors)) }
        text.appendHeader(refused)
        for (name, meter) in (tunnel?.meters.byName ?? [:]).sorted(by: { $0.key < $1.key }) {
            let l = labels(name)
            text.appendSample(refused, labels: l.refusedChannels, value: .count(meter.refusedAtChannelLimit))
            text.appendSample(refused, labels: l.refusedDials, value: .count(meter.refusedAtDialLimit))
        }
    }
}

/// `pipeops_http_client_requests_limited_total{client,outcome}`: requests the agent's own HTTP
/// clients held (`queued`) or failed (`refused`) at their per-origin connection cap. `client` is
/// `control_plane` (also the connectivity checks) or `kubernetes` (only while it runs).
final class HTTPClientLimitMetrics: MetricCollector {
    unowned let agent: Agent
    let limited = MetricDescriptor("pipeops_http_client_requests_limited_total",
                                   help: "Requests the agent's HTTP clients held (outcome \"queued\") or failed (\"refused\") at their per-origin connection limit, by client.",
                                   type: .counter)
    let controlPlane = (queued: PrometheusText.labels(names: ["client", "outcome"], values: ["control_plane", "queued"]),
                        refused: PrometheusText.labels(names: ["client", "outcome"], values: ["control_plane", "refused"]))
    let kubernetes = (queued: PrometheusText.labels(names: ["client", "outcome"], values: ["kubernetes", "queued"]),
                      refused: PrometheusText.labels(names: ["client", "outcome"], values: ["kubernetes", "refused"]))

    init(agent: Agent) { self.agent = agent }

    func collect(into text: inout PrometheusText) {
        text.appendHeader(limited)
        let cp = agent.httpClient
        text.appendSample(limited, labels: controlPlane.queued, value: .count(cp.requestsQueued))
        text.appendSample(limited, labels: controlPlane.refused, value: .count(cp.requestsRefused))
        if let k = agent.kubernetes?.client?.http {
            text.appendSample(limited, labels: kubernetes.queued, value: .count(k.requestsQueued))
            text.appendSample(limited, labels: kubernetes.refused, value: .count(k.requestsRefused))
        }
    }
}

/// `pipeops_kubernetes_api_calls_total{verb,code}` as the Kubernetes client counts its calls
/// (`code` is the HTTP status, `error` when no answer came); no samples before the first call.
final class KubernetesCallMetrics: MetricCollector {
    unowned let agent: Agent
    let calls = MetricDescriptor("pipeops_kubernetes_api_calls_total",
                                 help: "Kubernetes API calls by verb and status code (\"error\" when no answer came).", type: .counter)
    struct Key: Hashable {
        var verb: String
        var code: String
    }
    /// Label sets rendered once per (verb, code): both come from small fixed sets.
    private var labels: [Key: [UInt8]] = [:]

    init(agent: Agent) { self.agent = agent }

    func collect(into text: inout PrometheusText) {
        text.appendHeader(calls)
        for c in agent.kubernetes?.apiCalls ?? [] {
            let key = Key(verb: c.verb, code: c.code)
            let l = labels[key] ?? PrometheusText.labels(names: ["verb", "code"], values: [c.verb, c.code])
            labels[key] = l
            text.appendSample(calls, labels: l, value: .int(c.count))
        }
    }
}

/// The standard `process_*` families (as the Prometheus client libraries export them), from
/// one read of /proc per scrape.
final class ProcessMetrics: MetricCollector {
    let startTime: Double?
    let resident = MetricDescriptor("process_resident_memory_bytes", help: "Resident memory size in bytes.", type: .gauge)
    let cpu = MetricDescriptor("process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", type: .counter)
    let openFDs = MetricDescriptor("process_open_fds", help: "Number of open file descriptors.", type: .gauge)
    let maxFDs = MetricDescriptor("process_max_fds", help: "Maximum number of open file descriptors.", type: .gauge)
    let start = MetricDescriptor("process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.", type: .gauge)

    init(startTime: Double?) { self.startTime = startTime }

    func collect(into text: inout PrometheusText) {
        let p = ProcessStats.read(detailed: false)
        func one(_ family: MetricDescriptor, _ value: MetricValue?) {
            text.appendHeader(family)
            if let value { text.appendSample(family, value: value) }
        }
        one(resident, p.residentBytes.map { .count($0) })
        one(cpu, p.cpuSeconds.map { .number($0) })
        one(openFDs, p.openFDs.map { .int($0) })
        one(maxFDs, p.maxFDs.map { .int($0) })
        one(start, startTime.map { .number($0) })
    }
}
