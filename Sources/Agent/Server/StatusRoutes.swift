import FoundationEssentials
import Reactor

/// `/health`, `/ready` and `/version` exactly as agent-http-api.md describes them.
struct StatusRoutes {
    unowned let agent: Agent

    func install(on router: HTTPRouter) {
        router.add("GET", "/health") { [agent] _, responder in
            responder.sendJSON(200, json([
                "status": "healthy", "version": AgentVersion.version, "timestamp": Timestamp.now(),
            ], loop: agent.loop))
        }
        router.add("GET", "/version") { _, responder in
            responder.sendJSON(200, jsonText([
                "version": AgentVersion.version, "git_commit": AgentVersion.gitCommit, "build_date": AgentVersion.buildDate,
                "swift_version": AgentVersion.swiftVersion, "full_version": AgentVersion.full,
            ]))
        }
        router.add("GET", "/ready") { [agent] _, responder in
            let checks = agent.readinessChecks()
            let ready = checks.allSatisfy { $0.value.ok }
            var body = "{\"status\":\(JSONText.quoted(ready ? "ready" : "not ready")),\"checks\":{"
            body += checks.keys.sorted().map { name in
                let c = checks[name]!
                return "\(JSONText.quoted(name)):{\"ok\":\(c.ok),\"detail\":\(JSONText.quoted(c.detail))}"
            }.joined(separator: ",")
            body += "}}"
            responder.sendJSON(ready ? 200 : 503, body)
        }
    }

    private func json(_ fields: [String: String], loop: EventLoop) -> String { jsonText(fields) }
}

/// A flat JSON object of strings, keys sorted.
func jsonText(_ fields: [String: String]) -> String {
    "{" + fields.keys.sorted().map { "\(JSONText.quoted($0)):\(JSONText.quoted(fields[$0]!))" }.joined(separator: ",") + "}"
}

struct ReadinessCheck {
    var ok: Bool
    var detail: String
}
