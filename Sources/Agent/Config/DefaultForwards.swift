/// The forwards used when the config file names none: architecture.md's three, pointed at what
/// the agent can reach where it runs.
///
/// * On a VM beside k3s: `localhost:6443`, `localhost:10250`, `localhost:<agent.port>` (none for
///   the agent when `agent.port` is 0: its port is not known until it is bound).
/// * In a pod (`kubernetes.in_cluster`; when that is not set, whether `KUBERNETES_SERVICE_HOST`
///   is), localhost is
///   the pod itself, so the API server is the address Kubernetes gives every pod
///   (`KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`, i.e. kubernetes.default.svc) and the
///   kubelet is the one on the pod's own node, `NODE_IP:10250` (the manifest sets NODE_IP from
///   the downward API's `status.hostIP`). agent-http stays on localhost: that is the agent.
enum DefaultForwards {
    static let kubeletPort = 10250

    static func resolve(agentPort: Int, inCluster: Bool?,
                        environment: [String: String]) -> (forwards: [TunnelForward], warnings: [String]) {
        var vm = TunnelForward.defaults(agentPort: agentPort)
        var warnings: [String] = []
        // Port 0 is any free port, known only once bound: a forward to localhost:0 reaches nothing,
        // and `config print` could not write it in a form that loads back (ports are 1-65535).
        if agentPort == 0 {
            vm.removeAll { $0.name == "agent-http" }
            warnings.append("agent.port is 0 (any free port): no agent-http forward; list tunnel.forwards "
                + "to reach the agent through the tunnel")
        }
        guard inCluster ?? (nonEmpty(environment["KUBERNETES_SERVICE_HOST"]) != nil) else { return (vm, warnings) }
        let apiServer = apiServerAddress(environment, warnings: &warnings)
        let kubelet: String
        if let nodeIP = nonEmpty(environment["NODE_IP"]) {
            kubelet = hostPort(nodeIP, kubeletPort)
        } else {
            kubelet = "localhost:\(kubeletPort)"
            warnings.append("$NODE_IP is not set: the kubelet-metrics forward goes to \(kubelet), which a pod "
                + "does not reach; set NODE_IP from the downward API (status.hostIP)")
        }
        let forwards = vm.map { forward -> TunnelForward in
            var forward = forward
            switch forward.name {
            case "kubernetes-api": forward.localAddr = apiServer
            case "kubelet-metrics": forward.localAddr = kubelet
            default: break
            }
            return forward
        }
        return (forwards, warnings)
    }

    /// `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`; kubernetes.default.svc:443 for what is missing.
    private static func apiServerAddress(_ environment: [String: String], warnings: inout [String]) -> String {
        let host = nonEmpty(environment["KUBERNETES_SERVICE_HOST"]) ?? "kubernetes.default.svc"
        var port = 443
        if let text = nonEmpty(environment["KUBERNETES_SERVICE_PORT"]) {
            if let value = Int(text), (1...65535).contains(value) {
                port = value
            } else {
                warnings.append("$KUBERNETES_SERVICE_PORT: ignoring \"\(text)\" (not a port); using \(port)")
            }
        }
        return hostPort(host, port)
    }

    /// `host:port`, with an IPv6 address in brackets.
    private static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }
}
