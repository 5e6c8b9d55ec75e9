import Reactor

/// The agent's whole configuration after merging defaults, the file, the environment and the
/// command line (`ConfigLoader.load`). Plain values; each section mirrors a YAML mapping.
/// The key registry in ConfigKeys.swift maps YAML key paths onto these properties.
public struct AgentConfig: Sendable, Equatable {
    public var agent = AgentSettings()
    public var pipeops = PipeOpsSettings()
    public var server = ServerSettings()
    public var realtime = RealtimeSettings()
    public var kubernetes = KubernetesSettings()
    public var logging = LoggingSettings()
    public var features = FeatureSettings()
    public var reactor = ReactorSettings()
    public var tunnel = TunnelSettings()
    public var state = StateSettings()

    public init() {}

    /// Defaults that depend on the environment:
    /// * `state.path`: `$HOME/.pipeops-agent-state.json`, or `/var/lib/pipeops/state.json` when
    ///   HOME is unset (in a pod with a read-only root, point PIPEOPS_STATE_PATH at a volume).
    public static func defaults(environment: [String: String]) -> AgentConfig {
        var config = AgentConfig()
        if let home = environment["HOME"], !home.isEmpty {
            config.state.path = home.hasSuffix("/") ? "\(home).pipeops-agent-state.json" : "\(home)/.pipeops-agent-state.json"
        }
        return config
    }
}

public struct AgentSettings: Sendable, Equatable {
    /// nil: taken from the persisted state, else a new UUID v4 (then persisted).
    public var id: String?
    public var name: String?
    public var clusterName = "default-cluster"
    public var version = AgentVersion.version
    /// The agent's HTTP server port (health, metrics, API, WebSocket, SSE, dashboard).
    public var port = 8080
    /// The address that server listens on: every interface (what a pod needs, for kubelet
    /// probes and Prometheus), or `127.0.0.1` on a VM where only the tunnel should reach it.
    public var bindAddress = "0.0.0.0"
    public var labels: [String: String] = [:]
    public var heartbeatInterval: TimeAmount = .seconds(30)
    public init() {}
}

public struct PipeOpsSettings: Sendable, Equatable {
    public var apiURL = "https://api.pipeops.io"
    public var token: String?
    public var tls = ControlPlaneTLS()
    public var timeouts = ControlPlaneTimeouts()
    public init() {}
}

public struct ControlPlaneTLS: Sendable, Equatable {
    /// Extra CA bundle (PEM) trusted besides the system roots.
    public var caFile: String?
    /// Labs only: the client logs a warning at every connect.
    public var insecureSkipVerify = false
    /// Optional client certificate; both or neither.
    public var certFile: String?
    public var keyFile: String?
    public init() {}
}

/// Per-request deadlines of the control-plane client (control-plane-api.md).
public struct ControlPlaneTimeouts: Sendable, Equatable {
    public var connect: TimeAmount = .seconds(10)
    public var register: TimeAmount = .seconds(30)
    public var heartbeat: TimeAmount = .seconds(10)
    public var poll: TimeAmount = .seconds(10)
    public init() {}
}

public struct ServerSettings: Sendable, Equatable {
    public var enableWebSocket = true
    public var enableSSE = true
    public var enableDashboard = true
    /// Off by default: the API is token-protected and normally reached through the tunnel.
    public var corsEnabled = false
    /// Token for /api, /ws and /dashboard; nil means the cluster token is used.
    public var apiToken: String?
    public var metricsAuth = false
    /// Requests per second per client address; 0 turns the limit off.
    public var rateLimit = 50
    public init() {}
}

public struct RealtimeSettings: Sendable, Equatable {
    /// Informational: WebSocket is served on `agent.port`. nil means "same as agent.port".
    public var websocketPort: Int?
    public var sseHeartbeat: TimeAmount = .seconds(30)
    /// A WebSocket client silent this long (no frame, no pong to our pings, which go out every
    /// third of it) is closed; agent-http-api.md's 90 s.
    public var connectionTimeout: TimeAmount = .seconds(90)
    /// WebSocket + SSE clients in total.
    public var maxConnections = 100
    public init() {}
}

/// How the agent reaches its cluster (`KubernetesAccess.resolve` reads these).
public struct KubernetesSettings: Sendable, Equatable {
    /// true: the service account; false: a kubeconfig; nil: in cluster when the service
    /// account's token file exists, else a kubeconfig, else no Kubernetes client.
    public var inCluster: Bool?
    /// The agent's own namespace (where its state lives), not a watch filter.
    public var namespace = "pipeops-system"
    /// A kubeconfig file; unset: `$KUBECONFIG`, then `~/.kube/config`.
    public var kubeconfig: String?
    /// Overrides the API server URL (otherwise from the in-cluster environment or the kubeconfig).
    public var apiServer: String?
    /// The service account's token and CA (in cluster).
    public var tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    public var caFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    /// Namespaces whose pods, services and events are watched; empty: all.
    public var watchNamespaces: [String] = []
    public init() {}

    /// The service account's namespace file, beside its token.
    public var namespaceFile: String {
        guard let slash = tokenFile.lastIndex(of: "/") else { return "namespace" }
        return String(tokenFile[...slash]) + "namespace"
    }
}

public enum LogLevel: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, warning, error
}

public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case json, console
}

public struct LoggingSettings: Sendable, Equatable {
    public var level: LogLevel = .info
    public var format: LogFormat = .json
    public init() {}
}

public struct FeatureSettings: Sendable, Equatable {
    public var healthMonitoring = true
    public var runtimeMetrics = true
    public var featureDetection = true
    public var connectivityTesting = true
    public init() {}
}

/// `reactor.backend`: which kernel interface the event loop waits on (LoopBackendChoice).
public enum ReactorBackendSetting: String, Sendable, Equatable, CaseIterable {
    /// The faster one as measured (bench/reactor.sh), when the kernel allows it.
    case auto
    case epoll
    /// io_uring or a startup error: never a quiet fallback.
    case ioUring = "io_uring"
}

public struct ReactorSettings: Sendable, Equatable {
    public var backend: ReactorBackendSetting = .auto
    public init() {}
}

/// Where the agent keeps its state: the file at `state.path`, or the Secret
/// `pipeops-agent-state` in `kubernetes.namespace` (with one active agent per cluster by a Lease).
public enum StateBackend: String, Sendable, Equatable, CaseIterable {
    case file, secret
}

public enum TunnelMode: String, Sendable, Equatable, CaseIterable {
    case chisel, ssh
}

public struct TunnelForward: Sendable, Equatable {
    public var name: String
    /// `host:port` dialled for each tunnelled connection.
    public var localAddr: String
    public var remoteBind: String
    /// 0: allocated by the control plane.
    public var remotePort: Int
    /// How long dialling `localAddr` for one tunnelled connection may take.
    public var dialTimeout: TimeAmount

    public static let defaultDialTimeout: TimeAmount = .seconds(10)

    public init(name: String, localAddr: String, remoteBind: String = "127.0.0.1", remotePort: Int = 0,
                dialTimeout: TimeAmount = TunnelForward.defaultDialTimeout) {
        self.name = name
        self.localAddr = localAddr
        self.remoteBind = remoteBind
        self.remotePort = remotePort
        self.dialTimeout = dialTimeout
    }

    /// Used when the config names no forwards: the three of the architecture document.
    public static func defaults(agentPort: Int) -> [TunnelForward] {
        [
            TunnelForward(name: "kubernetes-api", localAddr: "localhost:6443"),
            TunnelForward(name: "kubelet-metrics", localAddr: "localhost:10250"),
            TunnelForward(name: "agent-http", localAddr: "localhost:\(agentPort)"),
        ]
    }
}

/// Settings for `tunnel.mode: ssh` (a plain SSH server doing the reverse forwards).
public struct TunnelSSHSettings: Sendable, Equatable {
    /// `host[:port]`, port 22 when omitted.
    public var server: String?
    public var user: String?
    public var password: String?
    public var identityFile: String?
    /// `SHA256:<base64>` as ssh-keygen prints it; nil accepts any key with a warning.
    public var hostKeyFingerprint: String?
    public init() {}
}

public struct TunnelSettings: Sendable, Equatable {
    public var enabled = true
    public var mode: TunnelMode = .chisel
    public var pollInterval: TimeAmount = .seconds(5)
    /// 0 means never close an idle tunnel.
    public var inactivityTimeout: TimeAmount = .zero
    public var forwards = TunnelForward.defaults(agentPort: 8080)
    public var ssh = TunnelSSHSettings()
    /// Tunnel channels open at once (bridged or being dialled); more are refused with the SSH
    /// reason `resource shortage`.
    public var maxChannels = 1024
    /// Local dials in progress at once; more channels are refused the same way.
    public var maxPendingDials = 64
    public init() {}
}

public struct StateSettings: Sendable, Equatable {
    /// nil: automatic, `secret` when the Kubernetes client runs in cluster (a pod), else `file`.
    public var backend: StateBackend?
    public var path = "/var/lib/pipeops/state.json"
    public init() {}
}
