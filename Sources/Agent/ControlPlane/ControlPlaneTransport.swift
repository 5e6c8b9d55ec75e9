import Reactor

/// One call to the control plane, relative to `pipeops.api_url`.
public struct ControlPlaneRequest: Sendable, Equatable {
    /// What the call is for, naming it in errors: "register", "heartbeat", "tunnel status".
    public var call: String
    public var method: String
    public var path: String
    public var body: [UInt8]?
    public var timeout: TimeAmount
}

public struct ControlPlaneResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]
    public init(status: Int, body: [UInt8]) { self.status = status; self.body = body }
}

/// Sends control-plane calls: adds the base URL, the bearer token and the standard headers, and
/// enforces the deadline and the 1 MiB response limit. Implemented over the reactor's HTTP client;
/// tests may drive the client with any implementation.
public protocol ControlPlaneTransport: AnyObject {
    func send(_ request: ControlPlaneRequest, token: String,
              completion: @escaping (Result<ControlPlaneResponse, ControlPlaneError>) -> Void)
}

/// Joins a base URL and a path with exactly one `/`, keeping any base path.
public func joinURL(_ base: String, _ path: String) -> String {
    var b = Substring(base)
    while b.hasSuffix("/") { b = b.dropLast() }
    var p = Substring(path)
    while p.hasPrefix("/") { p = p.dropFirst() }
    return "\(b)/\(p)"
}
