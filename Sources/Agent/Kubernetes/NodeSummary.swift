import Reactor

/// A node as the agent reports it: Ready condition, schedulability and kubelet version.
struct NodeSummary: ObjectSummary {
    var ready: Bool
    var unschedulable: Bool
    var kubeletVersion: String

    init(_ object: JSONFields, strings: inout StringInterner) throws(JSONShapeError) {
        let status = try object.optionalObject("status")
        var ready = false
        for condition in try status?.optionalObjects("conditions") ?? [] where try condition.optionalString("type") == "Ready" {
            ready = try condition.optionalString("status") == "True"
        }
        self.ready = ready
        if case .bool(true)? = try object.optionalObject("spec")?["unschedulable"] { unschedulable = true } else { unschedulable = false }
        kubeletVersion = strings.intern(try status?.optionalObject("nodeInfo")?.optionalString("kubeletVersion") ?? "")
    }
}
