import Reactor

/// `/metrics`, `/api/metrics/runtime` and `/api/status/features` (agent-http-api.md), read
/// from the agent's Telemetry. Access checks are the router's middleware, not these routes'.
/// `features.runtime_metrics` and `features.feature_detection` off leave their routes out.
struct TelemetryRoutes {
    unowned let agent: Agent

    func install(on router: HTTPRouter) {
        let telemetry = agent.telemetry
        telemetry.router = router
        telemetry.registerAgentMetrics(agent)
        router.add("GET", "/metrics") { _, responder in
            telemetry.registry.withRendered { responder.send(200, contentType: PrometheusText.contentType, body: $0) }
        }
        if agent.config.features.runtimeMetrics {
            router.add("GET", "/api/metrics/runtime") { [agent] _, responder in
                responder.sendJSON(200, bytes: telemetry.runtimeReport(agent).bytes)
            }
        }
        if agent.config.features.featureDetection {
            router.add("GET", "/api/status/features") { [agent] _, responder in
                responder.sendJSON(200, bytes: telemetry.featuresReport(agent).bytes)
            }
        }
    }
}
