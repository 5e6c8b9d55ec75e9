import CShims
import Reactor

/// What the agent knows about itself at one moment: the single source that `/ready`,
/// `/api/health/detailed`, the hub's `status` message and the dashboard read.
struct AgentStatus {
    struct Registration {
        var mode: String                 // "standalone" | "control_plane"
        var registered: Bool
        var clusterID: String?
        var apiServer: String?
        var error: String?
        var errorChain: [ErrorLink] = []
    }

    struct Forward {
        var name: String
        var localAddr: String
        var stats: ForwardStats
    }

    struct Tunnel {
        var state: String                // connected | connecting | disconnected | idle | disabled
        var server: String?
        var sinceNanoseconds: UInt64?
        var reconnects: UInt64
        var lastError: String?
        var lastErrorChain: [ErrorLink] = []
        var forwards: [Forward]
    }

    var agentID: String
    var name: String?
    var clusterName: String
    var startNanoseconds: UInt64
    var nowNanoseconds: UInt64
    var registration: Registration
    var checks: [String: ReadinessCheck]
    var tunnel: Tunnel
    var kubernetes: KubernetesSummary

    var ready: Bool { checks.allSatisfy { $0.value.ok } }
    var uptimeSeconds: Double { Double(nowNanoseconds &- startNanoseconds) / 1e9 }

    // MARK: JSON shapes (agent-http-api.md)

    var checksJSON: JSONValue {
        .object(checks.sorted { $0.key < $1.key }.map { name, c in
            JSONMember(name, .object(["ok": .bool(c.ok), "detail": .string(c.detail),
                                      "error_chain": c.errorChain.isEmpty ? nil : .array(c.errorChain.map(\.json))]))
        })
    }

    /// `/ready`'s body; also the `health` section of the detailed status and `health_update`.
    var readinessJSON: JSONValue {
        .object(["status": .string(ready ? "ready" : "not ready"), "checks": checksJSON])
    }

    var agentJSON: JSONValue {
        .object([
            "id": .string(agentID), "name": name.map { .string($0) } ?? .null, "cluster_name": .string(clusterName),
            "version": .string(AgentVersion.version), "uptime_seconds": .double((uptimeSeconds * 10).rounded() / 10),
            "start_time": .string(Timestamp.rfc3339(nanoseconds: startNanoseconds)),
        ])
    }

    var registrationJSON: JSONValue {
        .object([
            "mode": .string(registration.mode), "registered": .bool(registration.registered),
            "cluster_id": registration.clusterID.map { .string($0) } ?? .null,
            "api_server": registration.apiServer.map { .string($0) } ?? .null,
            "error": registration.error.map { .string($0) },
            "error_chain": registration.errorChain.isEmpty ? nil : .array(registration.errorChain.map(\.json)),
        ])
    }

    var tunnelJSON: JSONValue {
        .object([
            "state": .string(tunnel.state),
            "server": tunnel.server.map { .string($0) } ?? .null,
            "since": tunnel.sinceNanoseconds.map { .string(Timestamp.rfc3339(nanoseconds: $0)) } ?? .null,
            "reconnects": .int(tunnel.reconnects),
            "last_error": tunnel.lastError.map { .string($0) } ?? .null,
            "last_error_chain": .array(tunnel.lastErrorChain.map(\.json)),
            "forwards": .array(tunnel.forwards.map { f in
                .object([
                    "name": .string(f.name), "local_addr": .string(f.localAddr), "remote_port": .int(f.stats.remotePort),
                    "active_connections": .int(f.stats.activeConnections), "connections_total": .int(f.stats.totalConnections),
                    "bytes_in": .int(f.stats.bytesIn), "bytes_out": .int(f.stats.bytesOut), "dial_errors": .int(f.stats.dialErrors),
                ])
            }),
        ])
    }

    /// `/api/health/detailed`, and the hub's `status` message. `runtime` and `features` come
    /// from their own builders (they are also served alone).
    func detailedJSON(runtime: JSONValue, features: JSONValue) -> JSONValue {
        .object([
            "agent": agentJSON,
            "registration": registrationJSON,
            "health": readinessJSON,
            "tunnel": tunnelJSON,
            "kubernetes": kubernetes.json,
            "runtime": runtime,
            "features": features,
            "timestamp": .string(Timestamp.rfc3339(nanoseconds: nowNanoseconds)),
        ])
    }
}

struct ReadinessCheck {
    var ok: Bool
    var detail: String
    /// The failure behind a check that is not ok, layer by layer (`error_chain` in the JSON).
    var errorChain: [ErrorLink] = []

    init(ok: Bool, detail: String, failure: (any Error)? = nil) {
        self.ok = ok
        self.detail = detail
        errorChain = failure.map(ErrorChain.links) ?? []
    }
}

/// The cluster as the agent sees it, for every surface. `available` is false until a
/// Kubernetes client is configured and has data.
struct KubernetesSummary {
    var available = false
    var reachable = false
    var synced = false
    var version: String?
    var nodes: Int?
    var pods: Int?
    var podsByPhase: [String: Int] = [:]
    var detail = "no Kubernetes client configured"

    var json: JSONValue {
        .object([
            "available": .bool(available), "reachable": .bool(reachable), "synced": .bool(synced),
            "version": version.map { .string($0) } ?? .null,
            "nodes": nodes.map { .int($0) } ?? .null, "pods": pods.map { .int($0) } ?? .null,
            "pods_by_phase": .sortedObject(podsByPhase), "detail": .string(detail),
        ])
    }
}
