import CShims
import Reactor

/// The agent's numbers about itself: the HTTP server reports each answer here; everything else
/// is read from the agent when asked (realtime clients, the Kubernetes monitor, the tunnel,
/// /proc). `/metrics`,
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

    let httpRequests = CounterFamily<RequestKey>(
        name: "pipeops_http_requests_total",
        help: "HTTP answers of the agent's server by route (\"other\" for unknown paths and answers the server gives itself) and status code.",
        labelNames: ["endpoint", "code"]) { [$0.route ?? "other", String($0.status)] }

    public init() {}

    public var uptime: TimeAmount { Deadline.now() - startedAt }

    /// The HTTP server's observer (`HTTPServer.onResponse`).
    public func recordHTTPResponse(_ record: HTTPResponseRecord) {
        httpRequests.increment(RequestKey(route: record.route, status: record.status))
    }

    /// Whether an io_uring can be set up here (kernel, seccomp, sysctl); probed once.
    public private(set) lazy var ioUringAvailable: Bool = shim_io_uring_probe() == 0
}
