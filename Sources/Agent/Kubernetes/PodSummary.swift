import Reactor

/// A pod as the agent reports it: phase, readiness, restarts and node.
struct PodSummary: ObjectSummary {
    enum Phase: String, CaseIterable {
        case pending = "Pending", running = "Running", succeeded = "Succeeded", failed = "Failed", unknown = "Unknown"
    }

    var phase: Phase
    var readyContainers: UInt16
    var containers: UInt16
    var restarts: Int32
    /// Interned: many pods share a node.
    var node: String
    var terminating: Bool

    init(_ object: JSONFields, strings: inout StringInterner) throws(JSONShapeError) {
        let status = try object.optionalObject("status")
        let spec = try object.optionalObject("spec")
        phase = Phase(rawValue: try status?.optionalString("phase") ?? "Pending") ?? .unknown
        var ready: UInt16 = 0
        var total: UInt16 = 0
        var restarts: Int32 = 0
        for c in try status?.optionalObjects("containerStatuses") ?? [] {
            total &+= 1
            if case .bool(true)? = c["ready"] { ready &+= 1 }
            restarts &+= Int32(clamping: try c.optionalInt("restartCount") ?? 0)
        }
        // Before the kubelet reports, the spec says how many containers there will be.
        if total == 0, case .array(let specContainers)? = spec?["containers"] { total = UInt16(clamping: specContainers.count) }
        readyContainers = ready
        containers = total
        self.restarts = restarts
        node = strings.intern(try spec?.optionalString("nodeName") ?? "")
        terminating = try object.optionalObject("metadata")?.optionalString("deletionTimestamp") != nil
    }
}
