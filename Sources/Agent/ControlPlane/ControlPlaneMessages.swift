import FoundationEssentials

// The bodies of control-plane-api.md, field for field. Encoded with snake_case names; unknown
// response fields are ignored by Codable.

struct RegisterRequest: Encodable, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case agentID = "agent_id", name, clusterID = "cluster_id", hostname, agentVersion = "agent_version"
        case k8sVersion = "k8s_version", k8sServiceToken = "k8s_service_token", labels
        case tunnelPortConfig = "tunnel_port_config", serverSpecs = "server_specs", metadata
    }
}

struct ServerSpecs: Codable, Equatable {
    var cpuCores: Int
    var memoryGB: Double
    var diskGB: Double
    var os: String
    enum CodingKeys: String, CodingKey { case cpuCores = "cpu_cores", memoryGB = "memory_gb", diskGB = "disk_gb", os }
}

struct RegisterResponse: Decodable {
    struct Cluster: Decodable { var token: String? }
    var clusterID: String?
    var token: String?
    var cluster: Cluster?
    var apiServer: String?
    var tunnelURL: String?
    var status: String?
    var name: String?
    enum CodingKeys: String, CodingKey {
        case clusterID = "cluster_id", token, cluster, apiServer = "api_server", tunnelURL = "tunnel_url", status, name
    }
    /// `token`, else `cluster.token`.
    var rotatedToken: String? {
        if let t = token, !t.isEmpty { return t }
        if let t = cluster?.token, !t.isEmpty { return t }
        return nil
    }
}

struct HeartbeatRequest: Encodable {
    struct ForwardStats: Encodable {
        var name: String
        var remotePort: Int
        var activeConnections: Int
        var bytesIn: UInt64
        var bytesOut: UInt64
        enum CodingKeys: String, CodingKey {
            case name, remotePort = "remote_port", activeConnections = "active_connections", bytesIn = "bytes_in", bytesOut = "bytes_out"
        }
    }
    struct Metadata: Encodable {
        var version: String
        var uptimeSeconds: Int
        var k8sNodes: Int?
        var k8sPods: Int?
        var forwards: [ForwardStats]
        enum CodingKeys: String, CodingKey {
            case version, uptimeSeconds = "uptime_seconds", k8sNodes = "k8s_nodes", k8sPods = "k8s_pods", forwards
        }
    }
    var clusterID: String
    var agentID: String
    var status: String
    var tunnelStatus: String
    var timestamp: String
    var metadata: Metadata
    enum CodingKeys: String, CodingKey {
        case clusterID = "cluster_id", agentID = "agent_id", status, tunnelStatus = "tunnel_status", timestamp, metadata
    }
}

/// GET /api/agents/{agent_id}/tunnel/status
public struct TunnelStatusResponse: Decodable, Equatable, Sendable {
    public struct Allocation: Decodable, Equatable, Sendable {
        public var name: String
        public var remotePort: Int
        enum CodingKeys: String, CodingKey { case name, remotePort = "remote_port" }
    }
    public var status: String
    public var forwards: [Allocation]?
    public var credentials: String?
    public var pollFrequency: Double?
    public var tunnelServerAddr: String?
    public var serverFingerprint: String?
    enum CodingKeys: String, CodingKey {
        case status, forwards, credentials, pollFrequency = "poll_frequency"
        case tunnelServerAddr = "tunnel_server_addr", serverFingerprint = "server_fingerprint"
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
