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
    /// RFC 3339 in UTC on disk, so kept to whole seconds (a saved state loads back equal).
    public var updatedAt: Date {
        didSet { if updatedAt != Self.wholeSeconds(updatedAt) { updatedAt = Self.wholeSeconds(updatedAt) } }
    }

    public init(agentID: String, clusterID: String? = nil, clusterToken: String? = nil, updatedAt: Date = Date()) {
        self.agentID = agentID
        self.clusterID = clusterID
        self.clusterToken = clusterToken
        self.updatedAt = Self.wholeSeconds(updatedAt)
    }

    static func wholeSeconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agent_id"
        case clusterID = "cluster_id"
        case clusterToken = "cluster_token"
        case updatedAt = "updated_at"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        agentID = try c.decode(String.self, forKey: .agentID)
        clusterID = try c.decodeIfPresent(String.self, forKey: .clusterID)
        clusterToken = try c.decodeIfPresent(String.self, forKey: .clusterToken)
        let text = try c.decode(String.self, forKey: .updatedAt)
        guard let date = try? Date(text, strategy: .iso8601) else {
            throw DecodingError.dataCorruptedError(forKey: .updatedAt, in: c,
                                                   debugDescription: "expected an RFC 3339 time, got \"\(text)\"")
        }
        updatedAt = Self.wholeSeconds(date)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(agentID, forKey: .agentID)
        try c.encodeIfPresent(clusterID, forKey: .clusterID)
        try c.encodeIfPresent(clusterToken, forKey: .clusterToken)
        try c.encode(updatedAt.formatted(.iso8601), forKey: .updatedAt)
    }
}
