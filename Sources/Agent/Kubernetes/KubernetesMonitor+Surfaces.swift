/// The monitor as the agent's status surfaces take it: `KubernetesSummary` for `/ready`,
/// `/api/health/detailed` and the dashboard, and pod-log following in the hub's shape.
extension KubernetesMonitor {
    var summary: KubernetesSummary {
        var available = true
        if case .off = plan { available = false }
        let s = snapshot
        let ready = readiness
        return KubernetesSummary(available: available, reachable: s.reachable, synced: s.synced, version: s.version,
                                 nodes: s.synced ? s.nodes : nil, pods: s.synced ? s.pods : nil,
                                 podsByPhase: s.synced ? s.podsByPhase : [:], detail: ready.detail)
    }

    /// Follows a pod's log for the hub or SSE; the returned closure cancels it (and keeps it
    /// alive until then). `onEnd` gets why it ended, in words.
    func followLog(_ request: PodLogRequest, onLine: @escaping (String) -> Void,
                   onEnd: @escaping (String) -> Void) -> () -> Void {
        guard let stream = followPodLog(namespace: request.namespace, pod: request.pod, container: request.container,
                                        tailLines: request.tailLines, onLine: onLine, onEnd: { onEnd($0.description) }) else {
            onEnd("no Kubernetes client")
            return {}
        }
        return { stream.cancel() }
    }
}

extension PodLogStream.End: CustomStringConvertible {
    public var description: String {
        switch self {
        case .ended: return "the pod's log ended"
        case .cancelled: return "cancelled"
        case .slowReader(let why): return "cut off: a slow reader (\(why))"
        case .failed(let e): return "\(e)"
        }
    }
}
