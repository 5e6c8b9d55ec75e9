import Reactor

/// What the agent remembers across restarts (control-plane-api.md): its own ID, the cluster it
/// registered as, and the cluster token when the control plane rotated it. JSON on disk:
/// `{"agent_id": "...", "cluster_id": "...", "cluster_token": "...", "updated_at": "2026-01-15T10:30:00Z"}`.
public struct AgentState: Sendable, Equatable {
    public var agentID: String
    /// nil until the first successful registration.
    public var clusterID: String?
    /// A rotated cluster token; a secret, which is why the file is 0600.
    public var clusterToken: String?
    /// Seconds since the epoch; RFC 3339 in UTC on disk, whole seconds, so a saved state loads
    /// back equal.
    public var updatedAt: Int64

    public init(agentID: String, clusterID: String? = nil, clusterToken: String? = nil,
                updatedAt: Int64 = Timestamp.nowSeconds()) {
        self.agentID = agentID
        self.clusterID = clusterID
        self.clusterToken = clusterToken
        self.updatedAt = updatedAt
    }

    /// The state file's JSON; members in name order.
    var json: JSONValue {
        .object(["agent_id": .string(agentID), "cluster_id": clusterID.map { .string($0) },
                 "cluster_token": clusterToken.map { .string($0) }, "updated_at": .string(Timestamp.rfc3339(seconds: updatedAt))])
    }

    /// `updated_at` is informational: a file without it (written by hand, or by an older
    /// agent) is still the agent's identity, and gets `now`.
    init(json: JSONValue, now: Int64 = Timestamp.nowSeconds()) throws(JSONShapeError) {
        let f = try JSONFields(json)
        agentID = try f.string("agent_id")
        clusterID = try f.optionalString("cluster_id")
        clusterToken = try f.optionalString("cluster_token")
        if let text = try f.optionalString("updated_at") {
            guard let seconds = Timestamp.parseRFC3339(text) else {
                throw JSONShapeError(path: "updated_at", reason: "expected an RFC 3339 time, got \"\(text)\"")
            }
            updatedAt = seconds
        } else {
            updatedAt = now
        }
    }

    /// The state to run with, following control-plane-api.md: `agent.id` from the config, else
    /// the saved one, else a new UUID v4; the saved cluster registration is kept. The caller
    /// saves the result when it differs from `saved` (file or Secret alike).
    static func starting(from saved: AgentState?, configuredAgentID: String?, now: Int64) throws(RandomUUID.Failure) -> AgentState {
        var state: AgentState
        if let saved {
            state = saved
        } else {
            let id: String
            if let configuredAgentID { id = configuredAgentID } else { id = try RandomUUID.v4() }
            state = AgentState(agentID: id, updatedAt: now)
        }
        if let configuredAgentID, configuredAgentID != state.agentID {
            // The configured ID wins; the cluster registration stays (same machine, same cluster).
            state.agentID = configuredAgentID
            state.updatedAt = now
        }
        return state
    }
}
