import Reactor

/// A service as the agent reports it: its type and cluster IP.
struct ServiceSummary: ObjectSummary {
    var type: String
    var clusterIP: String

    init(_ object: JSONFields, strings: inout StringInterner) throws(JSONShapeError) {
        let spec = try object.optionalObject("spec")
        type = strings.intern(try spec?.optionalString("type") ?? "ClusterIP")
        clusterIP = try spec?.optionalString("clusterIP") ?? ""
    }
}
