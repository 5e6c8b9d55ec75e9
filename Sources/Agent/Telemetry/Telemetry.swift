import CShims
import Reactor

/// The agent's numbers about itself: the HTTP server reports each answer here, the Kubernetes
/// client (once there is one) each API call; everything else is read from the agent when asked
/// (realtime clients, the Kubernetes summary, the tunnel, /proc). `/metrics`,
/// `/api/metrics/runtime` and `/api/status/features` are built from it.
public final class Telemetry {
    /// When the agent started (monotonic, for uptime) and the process (wall clock, seconds).
    let startedAt = Deadline.now()
    let processStartTime: Double? = ProcessStats.startTimeSeconds()
    let registry = MetricsRegistry()

    /// The router the agent serves, to tell which routes (features) are installed.
    weak var router: HTTPRouter?

    struct RequestKey: Hashable {
        var route: String?
        var status: Int
    }
    struct KubernetesCallKey: Hashable {
        var verb: String
        var code: Int
    }

    let httpRequests = CounterFamily<RequestKey>(
        name: "pipeops_http_requests_total",
        help: "HTTP answers of the agent's server by route (\"other\" for unknown paths and answers the server gives itself) and status code.",
        labelNames: ["endpoint", "code"]) { [$0.route ?? "other", String($0.status)] }
    let kubernetesCalls = CounterFamily<KubernetesCallKey>(
        name: "pipeops_kubernetes_api_calls_total",
        help: "Kubernetes API calls by verb and status code; no samples while the agent has no Kubernetes client.",
        labelNames: ["verb", "code"]) { [$0.verb, String($0.code)] }

    public init() {}

    public var uptime: TimeAmount { Deadline.now() - startedAt }

    /// The HTTP server's observer (`HTTPServer.onResponse`).
    public func recordHTTPResponse(_ record: HTTPResponseRecord) {
        httpRequests.increment(RequestKey(route: record.route, status: record.status))
    }

    /// For the Kubernetes client: one call made, answered with `code` (0 when no answer came).
    /// `verb` should come from a fixed set (get, list, watch, create, update, patch, delete).
    public func recordKubernetesCall(verb: String, code: Int) {
        kubernetesCalls.increment(KubernetesCallKey(verb: verb, code: code))
    }

    /// Whether an io_uring can be set up here (kernel, seccomp, sysctl); probed once.
    public private(set) lazy var ioUringAvailable: Bool = shim_io_uring_probe() == 0
}
