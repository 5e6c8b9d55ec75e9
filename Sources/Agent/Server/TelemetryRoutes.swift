import Reactor

/// `/metrics`, `/api/metrics/runtime` and `/api/status/features` (agent-http-api.md), read
/// from the agent's Telemetry, whose runtime and features objects also go into
/// `/api/health/detailed`, the hub's `status` and its `metrics` pushes. Access checks are the
/// router's admit step, not these routes'. `features.runtime_metrics` and
/// `features.feature_detection` off leave their routes out (the objects stay in the others).
struct TelemetryRoutes {
    unowned let agent: Agent

    func install(on router: HTTPRouter) {
        let telemetry = agent.telemetry
        telemetry.router = router
        telemetry.registerAgentMetrics(agent)
        agent.runtimeJSON = { [unowned agent] in telemetry.runtimeReport(agent) }
        agent.featuresJSON = { [unowned agent] in .object(telemetry.detectFeatures(agent)) }
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
