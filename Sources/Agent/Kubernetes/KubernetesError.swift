import Reactor

/// Why a Kubernetes call failed, worded for `/ready` and the logs: the API server's own
/// `Status` (reason and message), a transport failure (refused, TLS, timeout), or a body we
/// could not read.
public struct KubernetesError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The API server answered with this HTTP status (and usually a `kind: Status` body).
        case status(code: Int)
        /// No answer: connect, TLS or the connection failed, or a deadline passed.
        case transport
        /// An answer we could not use: bad JSON, a body over its limit.
        case badResponse
        /// Our own configuration is unusable (a file, a kubeconfig form we do not support).
        case configuration
    }

    public let kind: Kind
    /// `Status.reason` when the server gave one (`NotFound`, `Expired`, `Unauthorized`).
    public let reason: String?
    public let message: String

    public init(kind: Kind, reason: String? = nil, message: String) {
        self.kind = kind
        self.reason = reason
        self.message = message
    }

    public var code: Int? {
        if case .status(let c) = kind { return c }
        return nil
    }

    public var description: String {
        switch kind {
        case .status(let code):
            let r = reason.map { " \($0)" } ?? ""
            return "HTTP \(code)\(r): \(message)"
        case .transport, .badResponse, .configuration:
            return message
        }
    }

    static func transport(_ error: HTTPError, _ what: String) -> KubernetesError {
        KubernetesError(kind: .transport, message: "\(what): \(error)")
    }

    /// A non-2xx answer: the `Status` object's reason and message when the body is one,
    /// otherwise the start of the body.
    static func fromResponse(code: Int, body: [UInt8]) -> KubernetesError {
        if let value = try? JSONParser.parse(body), let fields = try? JSONFields(value),
           (try? fields.optionalString("kind")) == "Status" {
            let reason = (try? fields.optionalString("reason")) ?? nil
            let message = ((try? fields.optionalString("message")) ?? nil) ?? "no message"
            return KubernetesError(kind: .status(code: code), reason: reason, message: message)
        }
        let text = snippet(body)
        return KubernetesError(kind: .status(code: code), reason: nil,
                               message: text.isEmpty ? "no body" : text)
    }
}
