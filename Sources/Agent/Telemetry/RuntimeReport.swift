import Reactor

extension Telemetry {
    /// The body of `/api/metrics/runtime` (agent-http-api.md): the process from /proc, the
    /// loop's own counters and timer lag, and the connections the agent holds. Also meant for
    /// `/api/health/detailed`'s `runtime` and the hub's `metrics` messages.
    func runtimeReport(_ agent: Agent) -> JSONValue {
        let p = ProcessStats.read()
        let loop = agent.loop
        let lag = loop.timerLag.percentilesMilliseconds([0.5, 0.99])
        func count(_ n: UInt64?) -> JSONValue? { n.map { .int($0) } ?? .null }
        func seconds(_ s: Double?) -> JSONValue? { s.map { .double($0) } ?? .null }
        return .object([
            "memory": .object([
                "rss_bytes": count(p.residentBytes),
                "peak_rss_bytes": count(p.peakResidentBytes),
                "heap_bytes": count(p.heapBytes),
            ]),
            "cpu": .object([
                "user_seconds": seconds(p.userCPUSeconds),
                "system_seconds": seconds(p.systemCPUSeconds),
            ]),
            "fds": .object([
                "open": p.openFDs.map { .int($0) } ?? .null,
                "limit": p.maxFDs.map { .int($0) } ?? .null,
            ]),
            "loop": .object([
                "iterations": .int(loop.iterations),
                "events": .int(loop.eventsDispatched),
                "timers": .int(loop.timersFired),
                "lag_ms_p50": lag.map { .double($0[0]) } ?? .null,
                "lag_ms_p99": lag.map { .double($0[1]) } ?? .null,
                "lag_samples": .int(min(loop.timerLag.recorded, UInt64(TimerLag.capacity))),
                "pending_timers": .int(loop.pendingTimerCount),
            ]),
            "connections": .object([
                "http": .int(agent.server?.connectionCount ?? 0),
                "http_buffered_bytes": .int(agent.server?.bufferedBytes ?? 0),
                "tunnel_channels": .int(agent.tunnel?.meters.activeConnections ?? 0),
                "websocket": .int(agent.realtimeClients.webSockets),
                "sse": .int(agent.realtimeClients.eventStreams),
            ]),
            "uptime_seconds": .double(uptime.seconds),
            "timestamp": .string(Timestamp.now(fractionDigits: 3)),
        ])
    }
}
