import Reactor

extension Telemetry {
    /// What this agent can do right now, as `/api/status/features` reports it: each flag is
    /// read from what runs (a tunnel manager exists, a route is installed, the kernel lets an
    /// io_uring be set up), not from what the build could do. Config switches count because a
    /// switched-off part is not installed. In a fixed order, so the version is stable.
    func detectFeatures(_ agent: Agent) -> [JSONMember] {
        let config = agent.config
        let tunnel = agent.tunnel != nil
        func served(_ path: String) -> Bool { router?.routes(path) ?? false }
        var features: [JSONMember] = [
            JSONMember("tunnel", .bool(tunnel)),
            JSONMember("tunnel_mode", tunnel ? .string(config.tunnel.mode.rawValue) : .null),
            JSONMember("multi_port_forward", .bool(tunnel && config.tunnel.forwards.count > 1)),
            JSONMember("control_plane", .bool(agent.controlPlane != nil)),
            JSONMember("websocket", .bool(config.server.enableWebSocket && served("/ws"))),
            JSONMember("sse", .bool(config.server.enableSSE && served("/api/realtime/events"))),
            JSONMember("dashboard", .bool(config.server.enableDashboard && served("/dashboard"))),
            JSONMember("log_streaming", .bool(config.server.enableSSE && served("/api/realtime/logs"))),
            JSONMember("kubernetes", .bool(agent.kubernetesSummary().available)),
            JSONMember("metrics", .bool(served("/metrics"))),
            JSONMember("metrics_auth", .bool(config.server.metricsAuth)),
            JSONMember("runtime_metrics", .bool(served("/api/metrics/runtime"))),
            JSONMember("health_detailed", .bool(served("/api/health/detailed"))),
            JSONMember("connectivity_testing", .bool(served("/api/status/connectivity"))),
            JSONMember("http_proxy", .bool(agent.proxies.httpProxy != nil || agent.proxies.httpsProxy != nil)),
            JSONMember("io_uring", .bool(ioUringAvailable)),
        ]
        features.removeAll { $0.value == .null }
        return features
    }

    /// `{"features":{…},"feature_version":"<agent version>+<8 hex>"}`: the version changes
    /// whenever the detected set does, so a client can cache by it.
    func featuresReport(_ agent: Agent) -> JSONValue {
        let features = JSONValue.object(detectFeatures(agent))
        return .object([
            "features": features,
            "feature_version": .string("\(AgentVersion.version)+\(Self.fnv1a32Hex(features.text()))"),
        ])
    }

    static func fnv1a32Hex(_ text: String) -> String {
        var h: UInt32 = 0x811C_9DC5
        for b in text.utf8 { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
