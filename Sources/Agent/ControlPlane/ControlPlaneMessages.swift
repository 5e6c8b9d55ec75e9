import Reactor

// The bodies of control-plane-api.md, field for field, with their snake_case names. Absent
// optionals are left out of requests; unknown response fields are ignored (JSONFields).

struct RegisterRequest: Equatable {
    var agentID: String
    var name: String
    var clusterID: String?
    var hostname: String
    var agentVersion: String
    var k8sVersion: String?
    var k8sServiceToken: String?
    var labels: [String: String]
    var tunnelPortConfig: [String: Int]
    var serverSpecs: ServerSpecs
    var metadata: [String: String]

    var json: JSONValue {
        .object(["agent_id": .string(agentID), "name": .string(name), "cluster_id": clusterID.map { .string($0) },
                 "hostname": .string(hostname), "agent_version": .string(agentVersion),
                 "k8s_version": k8sVersion.map { .string($0) }, "k8s_service_token": k8sServiceToken.map { .string($0) },
                 "labels": .sortedObject(labels), "tunnel_port_config": .sortedObject(tunnelPortConfig),
                 "server_specs": serverSpecs.json, "metadata": .sortedObject(metadata)])
    }
}

struct ServerSpecs: Equatable {
    var cpuCores: Int
    var memoryGB: Double
    var diskGB: Double
    var os: String
    var json: JSONValue {
        .object(["cpu_cores": .int(cpuCores), "memory_gb": .double(memoryGB), "disk_gb": .double(diskGB), "os": .string(os)])
    }
}

struct RegisterResponse {
    var clusterID: String?
    var token: String?
    /// `cluster.token`, where some control-plane versions put the rotated token.
    var clusterToken: String?
    var apiServer: String?
    var tunnelURL: String?
    var status: String?
    var name: String?

    init(json: JSONValue) throws(JSONShapeError) {
        let f = try JSONFields(json)
        clusterID = try f.optionalString("cluster_id")
        token = try f.optionalString("token")
        clusterToken = try f.optionalObject("cluster")?.optionalString("token")
        apiServer = try f.optionalString("api_server")
        tunnelURL = try f.optionalString("tunnel_url")
        status = try f.optionalString("status")
        name = try f.optionalString("name")
    }
    /// `token`, else `cluster.token`.
    var rotatedToken: String? {
        if let t = token, !t.isEmpty { return t }
        if let t = clusterToken, !t.isEmpty { return t }
        return nil
    }
}

struct HeartbeatRequest {
    struct ForwardStats {
        var name: String
        var remotePort: Int
        var activeConnections: Int
        var bytesIn: UInt64
        var bytesOut: UInt64
        var json: JSONValue {
            .object(["name": .string(name), "remote_port": .int(remotePort), "active_connections": .int(activeConnections),
                     "bytes_in": .int(bytesIn), "bytes_out": .int(bytesOut)])
        }
    }
    struct Metadata {
        var version: String
        var uptimeSeconds: Int
        var k8sNodes: Int?
        var k8sPods: Int?
        var forwards: [ForwardStats]
        var json: JSONValue {
            .object(["version": .string(version), "uptime_seconds": .int(uptimeSeconds), "k8s_nodes": k8sNodes.map { .int($0) },
                     "k8s_pods": k8sPods.map { .int($0) }, "forwards": .array(forwards.map(\.json))])
        }
    }
    var clusterID: String
    var agentID: String
    var status: String
    var tunnelStatus: String
    var timestamp: String
    var metadata: Metadata
    var json: JSONValue {
        .object(["cluster_id": .string(clusterID), "agent_id": .string(agentID), "status": .string(status),
                 "tunnel_status": .string(tunnelStatus), "timestamp": .string(timestamp), "metadata": metadata.json])
    }
}

/// GET /api/agents/{agent_id}/tunnel/status
public struct TunnelStatusResponse: Equatable, Sendable {
    public struct Allocation: Equatable, Sendable {
        public var name: String
        public var remotePort: Int
    }
    public var status: String
    public var forwards: [Allocation]?
    public var credentials: String?
    public var pollFrequency: Double?
    public var tunnelServerAddr: String?
    public var serverFingerprint: String?

    public init(status: String, forwards: [Allocation]?, credentials: String?, pollFrequency: Double?,
                tunnelServerAddr: String?, serverFingerprint: String?) {
        self.status = status
        self.forwards = forwards
        self.credentials = credentials
        self.pollFrequency = pollFrequency
        self.tunnelServerAddr = tunnelServerAddr
        self.serverFingerprint = serverFingerprint
    }

    init(json: JSONValue) throws(JSONShapeError) {
        let f = try JSONFields(json)
        status = try f.string("status")
        var allocations: [Allocation]?
        if let list = try f.optionalObjects("forwards") {
            allocations = []
            for a in list { allocations?.append(Allocation(name: try a.string("name"), remotePort: try a.int("remote_port"))) }
        }
        forwards = allocations
        credentials = try f.optionalString("credentials")
        pollFrequency = try f.optionalDouble("poll_frequency")
        tunnelServerAddr = try f.optionalString("tunnel_server_addr")
        serverFingerprint = try f.optionalString("server_fingerprint")
    }
}

/// What the poll says the tunnel should be.
public enum TunnelDirective: Equatable, Sendable {
    case idle
    case required(TunnelStatusResponse)
    case unknown(String)

    init(_ response: TunnelStatusResponse) {
        switch response.status.uppercased() {
        case "IDLE": self = .idle
        case "REQUIRED", "READY", "ACTIVE": self = .required(response)
        default: self = .unknown(response.status)
        }
    }
}
