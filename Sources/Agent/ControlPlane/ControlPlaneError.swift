import Reactor

/// Why a control-plane call failed, named by the call ("register", "heartbeat", "tunnel
/// status"): no answer (the HTTP error, and below it the connect or TLS error, as the cause), an
/// answer with a status we cannot use (and the body's own message), or a body we cannot read.
public enum ControlPlaneError: ChainedError, Sendable, Equatable {
    case badURL(call: String, String)
    case http(call: String, HTTPError)
    case status(Int, message: String, call: String)
    case decode(call: String, String)

    public var call: String {
        switch self {
        case .badURL(let c, _), .http(let c, _), .status(_, _, let c), .decode(let c, _): return c
        }
    }

    public var layer: String { "control_plane" }

    public var message: String {
        switch self {
        case .badURL(let c, let why): return "\(c): \(why)"
        case .http(let c, _): return c
        case .status(let code, let m, let c): return m.isEmpty ? "\(c): HTTP \(code)" : "\(c): HTTP \(code): \(m)"
        case .decode(let c, let why): return "\(c): \(why)"
        }
    }

    public var cause: (any Error)? {
        if case .http(_, let e) = self { return e }
        return nil
    }

    public var description: String { chainDescription }

    /// A status we cannot use, with the body's `message` or `error` when it is JSON that has
    /// one, else its first printable bytes.
    static func status(_ code: Int, body: [UInt8], call: String) -> ControlPlaneError {
        .status(code, message: bodyMessage(body), call: call)
    }

    static func bodyMessage(_ body: [UInt8]) -> String {
        if let json = try? JSONParser.parse(body), case .object(let members) = json {
            for key in ["message", "error"] {
                if let m = members.first(where: { $0.key == key }), case .string(let text) = m.value, !text.isEmpty {
                    return snippet(Array(text.utf8))
                }
            }
        }
        return snippet(body)
    }
}
