import Reactor

/// The cluster as the agent sees it right now, for the status surfaces (`/api/health/detailed`'s
/// kubernetes section, the dashboard's cluster panel, `/metrics`). Cheap to make: counts come
/// from the compact summaries.
public struct KubernetesSnapshot: Sendable, Equatable {
    /// False when the agent has no cluster (nothing configured or found); `lastError` says why.
    public var enabled: Bool
    /// Where the access came from: `in-cluster service account` or `kubeconfig FILE (context C)`.
    public var source: String?
    /// `https://host:port`
    public var server: String?
    /// The last call got an answer (any 2xx) and none failed since.
    public var reachable: Bool
    /// `gitVersion` from `/version`.
    public var version: String?
    /// Every watch has completed its first list.
    public var synced: Bool
    public var nodes: Int
    public var nodesReady: Int
    public var pods: Int
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown` (every phase present, zeros included).
    public var podsByPhase: [String: Int]
    public var services: Int
    /// Empty: all namespaces.
    public var namespacesWatched: [String]
    public var lastError: String?

    /// The kubernetes section of `/api/health/detailed`.
    public var json: JSONValue {
        .object([
            "enabled": .bool(enabled), "source": source.map(JSONValue.string), "server": server.map(JSONValue.string),
            "reachable": .bool(reachable), "version": version.map(JSONValue.string), "synced": .bool(synced),
            "nodes": .int(nodes), "nodes_ready": .int(nodesReady), "pods": .int(pods),
            "pods_by_phase": .sortedObject(podsByPhase), "services": .int(services),
            "namespaces_watched": .array(namespacesWatched.map(JSONValue.string)),
            "last_error": lastError.map(JSONValue.string),
        ])
    }
}
