import Logging
import Reactor

/// The agent's view of its cluster, on the loop: it finds the API server (in cluster, a
/// kubeconfig, or none), watches nodes, pods, services and events, and serves what the rest of
/// the agent reports.
///
/// Interface for the status surfaces (all on the loop thread):
///
/// * `snapshot` — reachable, version, synced, nodes (and ready), pods total and by phase,
///   services, namespaces watched, last error: `/api/health/detailed`'s kubernetes section
///   (`snapshot.json`), the dashboard's cluster panel, `pipeops_cluster_nodes_total` and
///   `pipeops_cluster_pods_total` (use `clusterCounts`, nil until synced).
/// * `apiCalls` — calls by verb and code (`code` is the HTTP status or `error`), read at
///   scrape time for `pipeops_kubernetes_api_calls_total{verb,code}`; `onAPICall(verb, code)`
///   hears each call as it finishes.
/// * `onEvent(KubernetesEvent)` — each cluster event added or updated after the first sync:
///   `kubernetes_event` on the WebSocket hub and SSE (`event.json` is the message's data).
/// * `onChange()` — a node or pod was added, changed or removed (the agent pushes a fresh
///   `status` to hub clients, at most once a second).
/// * `followPodLog(...)` — a pod's log followed line by line, with `pause`/`resume`/`cancel`
///   on the returned `PodLogStream` for the hub's `logs` command and `/api/realtime/logs`.
/// * `readiness` — `/ready`'s `kubernetes` check; `version`, `serviceAccountToken` and
///   `clusterCounts` — the control plane's register and heartbeat fields.
public final class KubernetesMonitor {
    struct Options {
        var watch = ResourceWatcher.Options()
        var requestTimeout = TimeAmount.seconds(30)
        var connectTimeout = TimeAmount.seconds(10)
        /// `/version` is asked again this often (an upgrade changes it).
        var versionRefresh = TimeAmount.seconds(600)
    }

    unowned let loop: EventLoop
    let settings: KubernetesSettings
    let logger: Logger
    let options: Options
    private(set) var plan: KubernetesAccess.Plan
    private(set) var client: KubernetesClient?
    private(set) var watchers: [ResourceWatcher] = []
    private(set) var nodes: [ObjectStore<NodeSummary>] = []
    private(set) var pods: [ObjectStore<PodSummary>] = []
    private(set) var services: [ObjectStore<ServiceSummary>] = []
    let events = EventFeed()
    public private(set) var version: String?
    private var versionCall: KubernetesClient.Call?
    private var versionTimer: LoopTimer?
    private var versionBackoff = Backoff(initial: .seconds(1), maximum: .seconds(60))
    private var stopped = false

    public var onAPICall: ((_ verb: String, _ code: String) -> Void)? {
        didSet { client?.onAPICall = onAPICall }
    }
    public var onEvent: ((KubernetesEvent) -> Void)? {
        didSet { events.onEvent = onEvent }
    }
    public var onChange: (() -> Void)?

    public convenience init(loop: EventLoop, settings: KubernetesSettings, environment: [String: String],
                            resolver: Resolver, proxies: HTTPProxySettings, logger: Logger) {
        self.init(loop: loop, settings: settings, environment: environment, resolver: resolver, proxies: proxies,
                  logger: logger, options: Options())
    }

    init(loop: EventLoop, settings: KubernetesSettings, environment: [String: String], resolver: Resolver,
         proxies: HTTPProxySettings, logger: Logger, options: Options) {
        self.loop = loop
        self.settings = settings
        self.options = options
        var l = logger
        l[metadataKey: "component"] = "kubernetes"
        self.logger = l
        plan = KubernetesAccess.resolve(settings, environment: environment)
        guard case .use(let access) = plan else { return }
        let connector: HTTPConnector
        do { connector = try KubernetesConnector.make(loop: loop, resolver: resolver, access: access) } catch {
            plan = .failed(error.message)
            return
        }
        let c = KubernetesClient(loop: loop, access: access, connector: connector, proxies: proxies, logger: l)
        c.http.connectTimeout = options.connectTimeout
        client = c
    }

    /// Starts the watches (nothing happens when Kubernetes is off or unusable).
    public func start() {
        switch plan {
        case .off(let why):
            logger.info("Kubernetes client off", metadata: ["reason": "\(why)"])
            return
        case .failed(let why):
            logger.error("Kubernetes client not started", metadata: ["error": "\(why)"])
            return
        case .use(let access):
            logger.info("Kubernetes client starting", metadata: ["server": "\(access.server)", "source": "\(access.source)",
                                                                "namespaces": "\(settings.watchNamespaces.isEmpty ? "all" : settings.watchNamespaces.joined(separator: ","))"])
            if access.insecureSkipVerify {
                logger.warning("kubeconfig insecure-skip-tls-verify is on: the API server's certificate is NOT checked")
            }
        }
        guard let client, watchers.isEmpty else { return }
        fetchVersion()
        let nodeStore = ObjectStore<NodeSummary>()
        nodes = [nodeStore]
        watch("nodes", "/api/v1/nodes", nodeStore, client)
        let scopes = settings.watchNamespaces.isEmpty ? [nil] : settings.watchNamespaces.map { Optional($0) }
        for ns in scopes {
            let prefix = ns.map { "/api/v1/namespaces/\(KubernetesQuery.encode($0))" } ?? "/api/v1"
            let podStore = ObjectStore<PodSummary>()
            pods.append(podStore)
            watch("pods", prefix + "/pods", podStore, client)
            let serviceStore = ObjectStore<ServiceSummary>()
            services.append(serviceStore)
            watch("services", prefix + "/services", serviceStore, client)
            watch("events", prefix + "/events", events, client)
        }
        for s in nodes { s.onChange = { [weak self] _, _, _ in self?.onChange?() } }
        for s in pods { s.onChange = { [weak self] _, _, _ in self?.onChange?() } }
    }

    private func watch(_ resource: String, _ path: String, _ sink: WatchSink, _ client: KubernetesClient) {
        let w = ResourceWatcher(resource: resource, path: path, loop: loop, client: client, sink: sink,
                                options: options.watch, logger: logger)
        watchers.append(w)
        w.start()
    }

    public func stop() {
        stopped = true
        for w in watchers { w.stop() }
        versionCall?.cancel()
        versionTimer?.cancel()
        client?.close()
    }

    private func fetchVersion() {
        guard !stopped, let client else { return }
        versionCall = client.get("/version", timeout: options.requestTimeout) { [weak self] result in
            guard let self, !self.stopped else { return }
            self.versionCall = nil
            var next = self.options.versionRefresh
            switch result {
            case .success(let value):
                if let v = (try? JSONFields(value).optionalString("gitVersion")) ?? nil, !v.isEmpty {
                    if v != self.version { self.logger.info("Kubernetes API server version", metadata: ["version": "\(v)"]) }
                    self.version = v
                }
                self.versionBackoff.reset()
            case .failure(let e):
                next = self.versionBackoff.next()
                self.logger.warning("cannot read the API server's /version", metadata: ["error": "\(e)", "retry_in": "\(next)"])
            }
            self.versionTimer = self.loop.schedule(in: next) { [weak self] in self?.fetchVersion() }
        }
    }

    // MARK: what the agent reports

    /// Every watch has listed once (the counts are whole).
    public var synced: Bool { !watchers.isEmpty && watchers.allSatisfy(\.synced) }

    /// For the heartbeat and `/metrics`: nil until synced, so a half-listed cluster is never reported.
    public var clusterCounts: (nodes: Int?, pods: Int?) {
        guard synced else { return (nil, nil) }
        return (nodes.reduce(0) { $0 + $1.count }, pods.reduce(0) { $0 + $1.count })
    }

    /// The service account's token, for registration; only in cluster.
    public var serviceAccountToken: String? {
        guard let client, client.access.source == .inCluster else { return nil }
        return client.token.current()
    }

    /// `pipeops_kubernetes_api_calls_total{verb,code}` so far.
    public var apiCalls: [(verb: String, code: String, count: Int)] {
        (client?.calls ?? [:]).map { (verb: $0.key.verb, code: $0.key.code, count: $0.value) }
            .sorted { ($0.verb, $0.code) < ($1.verb, $1.code) }
    }

    public var snapshot: KubernetesSnapshot {
        var byPhase: [String: Int] = [:]
        for p in PodSummary.Phase.allCases { byPhase[p.rawValue] = 0 }
        var podCount = 0
        for store in pods {
            podCount += store.count
            for entry in store.entries.values { byPhase[entry.summary.phase.rawValue, default: 0] += 1 }
        }
        var nodeCount = 0
        var ready = 0
        for store in nodes {
            nodeCount += store.count
            ready += store.entries.values.reduce(0) { $0 + ($1.summary.ready ? 1 : 0) }
        }
        var access: KubernetesAccess?
        if case .use(let a) = plan { access = a }
        return KubernetesSnapshot(
            enabled: access != nil, source: access.map { "\($0.source)" }, server: access.map { "\($0.server)" },
            reachable: client.map { $0.everReached && $0.lastFailure == nil } ?? false,
            version: version, synced: synced, nodes: nodeCount, nodesReady: ready, pods: podCount, podsByPhase: byPhase,
            services: services.reduce(0) { $0 + $1.count }, namespacesWatched: settings.watchNamespaces,
            lastError: lastError)
    }

    /// The newest problem: a plan that failed, the last failed call, a watch's last error.
    var lastError: String? {
        switch plan {
        case .off(let why): return "off: \(why)"
        case .failed(let why): return why
        case .use: break
        }
        if let f = client?.lastFailure { return f.description }
        return watchers.lazy.compactMap { $0.lastError.map { "\($0)" } }.first
    }

    /// `/ready`'s `kubernetes` check: ok when off by absence (nothing to reach), or when the API
    /// answers and every watch has synced; otherwise the cause.
    public var readiness: (ok: Bool, detail: String) {
        guard case .use(let access) = plan, let client else {
            if case .off(let why) = plan { return (true, "off: \(why)") }
            return (false, lastError ?? "unusable")
        }
        let server = "\(access.server)"
        if let failure = client.lastFailure { return (false, "\(server): \(failure)") }
        if !client.everReached { return (false, "connecting to \(server) (\(access.source))") }
        let s = snapshot
        guard s.synced else {
            let pending = watchers.filter { !$0.synced }.map(\.resource)
            var seen: [String] = []
            for p in pending where !seen.contains(p) { seen.append(p) }
            return (false, "\(server): syncing \(seen.joined(separator: ", "))")
        }
        let phases = PodSummary.Phase.allCases.compactMap { p in s.podsByPhase[p.rawValue].flatMap { $0 > 0 ? "\(p.rawValue) \($0)" : nil } }
        let scope = settings.watchNamespaces.isEmpty ? "" : " in \(settings.watchNamespaces.joined(separator: ","))"
        return (true, "\(version ?? "version unknown") at \(server): \(s.nodes) nodes (\(s.nodesReady) ready), "
                + "\(s.pods) pods\(scope)" + (phases.isEmpty ? "" : " (\(phases.joined(separator: ", ")))"))
    }

    /// Follows a pod's log: `onLine` gets each line in order, `onEnd` once. nil when there is no
    /// cluster. Keep the returned stream: dropping it cancels the follow.
    public func followPodLog(namespace: String, pod: String, container: String? = nil, tailLines: Int? = nil,
                             limits: PodLogStream.Limits = PodLogStream.Limits(),
                             onLine: @escaping (String) -> Void, onEnd: @escaping (PodLogStream.End) -> Void) -> PodLogStream? {
        guard let client, !stopped else { return nil }
        let stream = PodLogStream(loop: loop, namespace: namespace, pod: pod, container: container, limits: limits,
                                  onLine: onLine, onEnd: onEnd)
        stream.start(client: client, tailLines: tailLines)
        return stream
    }
}
