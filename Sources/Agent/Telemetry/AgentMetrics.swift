import Reactor

extension Telemetry {
    /// Registers every metric agent-http-api.md names, in its order: the architecture
    /// document's eight, the tunnel's, then the standard process ones. Values are read from
    /// `agent` when scraped. Called once, when the routes are installed.
    func registerAgentMetrics(_ agent: Agent) {
        registry.register("pipeops_agent_status",
                          help: "1 while the agent runs and is registered with the control plane (or runs standalone), else 0.",
                          type: .gauge) { [unowned agent] in .bool(agent.controlPlane?.isRegistered ?? true) }
        registry.register("pipeops_websocket_connections", help: "Open WebSocket connections to the agent's hub (/ws).",
                          type: .gauge) { [unowned self] in .int(self.webSocketClients()) }
        registry.register("pipeops_sse_connections", help: "Open Server-Sent Event streams (/api/realtime/*).",
                          type: .gauge) { [unowned self] in .int(self.sseClients()) }
        registry.register(httpRequests)
        registry.register("pipeops_cluster_nodes_total",
                          help: "Nodes in the cluster as the agent's Kubernetes client last counted them; 0 while the agent has no Kubernetes client. Untyped: a count, not a counter.",
                          type: .untyped) { [unowned self] in .int(self.clusterNodes) }
        registry.register("pipeops_cluster_pods_total",
                          help: "Pods in the cluster as the agent's Kubernetes client last counted them; 0 while the agent has no Kubernetes client. Untyped: a count, not a counter.",
                          type: .untyped) { [unowned self] in .int(self.clusterPods) }
        registry.register("pipeops_agent_uptime_seconds", help: "Seconds since the agent started.",
                          type: .gauge) { [unowned self] in .number(self.uptime.seconds) }
        registry.register(kubernetesCalls)
        registry.register(TunnelMetrics(agent: agent))
        registry.register(ProcessMetrics(startTime: processStartTime))
    }
}

/// The tunnel's families, from one look at the manager per scrape. Without a tunnel (disabled,
/// or an SSH tunnel that could not start) it is down and the per-forward families are empty.
final class TunnelMetrics: MetricCollector {
    unowned let agent: Agent
    init(agent: Agent) { self.agent = agent }

    static let forward = ["forward"]
    static let forwardDirection = ["forward", "direction"]

    func collect(into text: inout PrometheusText) {
        let tunnel = agent.tunnel
        let forwards = (tunnel?.stats ?? [:]).sorted { $0.key < $1.key }
        text.appendHeader(name: "pipeops_tunnel_up", help: "1 while the tunnel is connected, else 0.", type: .gauge)
        text.appendSample(name: "pipeops_tunnel_up", value: .bool(tunnel?.phase == .connected))
        text.appendHeader(name: "pipeops_tunnel_reconnects_total", help: "Times the tunnel dropped or failed to connect and a reconnect was scheduled.",
                          type: .counter)
        text.appendSample(name: "pipeops_tunnel_reconnects_total", value: .count(tunnel?.reconnects ?? 0))

        func family(_ name: String, _ help: String, _ type: PrometheusText.MetricType, _ value: (ForwardStats) -> MetricValue) {
            text.appendHeader(name: name, help: help, type: type)
            for (forward, stats) in forwards {
                text.appendSample(name: name, labelNames: Self.forward, labelValues: [forward], value: value(stats))
            }
        }
        family("pipeops_tunnel_connections_active", "Tunnelled connections open now, by forward.", .gauge) { .int($0.activeConnections) }
        family("pipeops_tunnel_connections_total", "Tunnelled connections bridged to the forward's local address, by forward.", .counter) {
            .count($0.totalConnections)
        }
        let bytes = "pipeops_tunnel_bytes_total"
        text.appendHeader(name: bytes, help: "Bytes carried by tunnelled connections, counted as they move (open connections included): direction \"in\" from the tunnel to the local service, \"out\" back.",
                          type: .counter)
        for (forward, stats) in forwards {
            text.appendSample(name: bytes, labelNames: Self.forwardDirection, labelValues: [forward, "in"], value: .count(stats.bytesIn))
            text.appendSample(name: bytes, labelNames: Self.forwardDirection, labelValues: [forward, "out"], value: .count(stats.bytesOut))
        }
        family("pipeops_tunnel_dial_errors_total", "Tunnelled connections whose local address could not be reached, by forward.", .counter) {
            .count($0.dialErrors)
        }
    }
}

/// The standard `process_*` families (as the Prometheus client libraries export them), from
/// one read of /proc per scrape.
final class ProcessMetrics: MetricCollector {
    let startTime: Double?
    init(startTime: Double?) { self.startTime = startTime }

    func collect(into text: inout PrometheusText) {
        let p = ProcessStats.read()
        func one(_ name: String, _ help: String, _ type: PrometheusText.MetricType, _ value: MetricValue?) {
            text.appendHeader(name: name, help: help, type: type)
            if let value { text.appendSample(name: name, value: value) }
        }
        one("process_resident_memory_bytes", "Resident memory size in bytes.", .gauge, p.residentBytes.map { .number(Double($0)) })
        one("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", .counter, p.cpuSeconds.map { .number($0) })
        one("process_open_fds", "Number of open file descriptors.", .gauge, p.openFDs.map { .int($0) })
        one("process_max_fds", "Maximum number of open file descriptors.", .gauge, p.maxFDs.map { .int($0) })
        one("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", .gauge, startTime.map { .number($0) })
    }
}
