import Reactor

/// `/health`, `/ready`, `/version` and `/api/health/detailed` as agent-http-api.md describes them.
struct StatusRoutes {
    unowned let agent: Agent

    func install(on router: HTTPRouter) {
        // Probes hit /health often; its body changes once a second (the timestamp), so it is
        // built once a second.
        let health = HealthBody()
        router.add("GET", "/health") { _, responder in
            responder.sendJSON(200, bytes: health.current())
        }
        let version = JSONValue.sortedObject([
            "version": AgentVersion.version, "git_commit": AgentVersion.gitCommit, "build_date": AgentVersion.buildDate,
            "swift_version": AgentVersion.swiftVersion, "full_version": AgentVersion.full,
        ]).bytes
        router.add("GET", "/version") { _, responder in
            responder.sendJSON(200, bytes: version)
        }
        router.add("GET", "/ready") { [agent] _, responder in
            let status = agent.status()
            responder.sendJSON(status.ready ? 200 : 503, bytes: status.readinessJSON.bytes)
        }
        router.add("GET", "/api/health/detailed") { [agent] _, responder in
            responder.sendJSON(200, bytes: agent.detailedStatusJSON().bytes)
        }
    }
}

/// `{"status":"healthy","timestamp":…,"version":…}`, rebuilt when the second changes.
final class HealthBody {
    private var second: Int64 = 0
    private var body: [UInt8] = []

    func current() -> [UInt8] {
        let now = Timestamp.nowSeconds()
        if now != second || body.isEmpty {
            second = now
            body = JSONValue.sortedObject(["status": "healthy", "version": AgentVersion.version,
                                           "timestamp": Timestamp.rfc3339(seconds: now)]).bytes
        }
        return body
    }
}
