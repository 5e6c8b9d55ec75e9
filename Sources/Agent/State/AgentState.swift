import FoundationEssentials

/// What the agent remembers across restarts (control-plane-api.md): its own ID, the cluster it
/// registered as, and the cluster token when the control plane rotated it. JSON on disk:
/// `{"agent_id": "...", "cluster_id": "...", "cluster_token": "...", "updated_at": "2026-01-15T10:30:00Z"}`.
public struct AgentState: Sendable, Equatable, Codable {
    public var agentID: String
    /// nil until the first successful registration.
    public var clusterID: String?
    /// A rotated cluster token; a secret, which is why the file is 0600.
    public var clusterToken: String?
    /// RFC 3339, whole seconds, UTC.
    public var updatedAt: Date

    public init(agentID: String, clusterID: String? = nil, clusterToken: String? = nil, updatedAt: Date = Date()) {
        self.agentID = agentID
        self.clusterID = clusterID
        self.clusterToken = clusterToken
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agent_id"
        case clusterID = "cluster_id"
        case clusterToken = "cluster_token"
        case updatedAt = "updated_at"
    }
}
