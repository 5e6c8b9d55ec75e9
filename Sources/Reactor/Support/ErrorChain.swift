/// An error that says which layer failed and what went wrong there, and keeps the lower layer's
/// error as its cause, so `/ready`, logs and the hub can show the whole path of a failure:
/// "tunnel server wss://t.example:443: connect to t.example:443: resolve: NXDOMAIN".
///
/// A layer that only passes its cause on (an umbrella type such as `ConnectionError` wrapping a
/// `TLSError`) returns an empty `message`; it then takes no place in the chain.
public protocol ChainedError: Error, CustomStringConvertible {
    /// A short name for the layer: "connect", "tls", "ssh", "http", "control_plane", "tunnel".
    var layer: String { get }
    /// What this layer saw, without the cause's text.
    var message: String { get }
    /// The lower layer's error, if this one comes from it.
    var cause: (any Error)? { get }
}

extension ChainedError {
    /// "message: cause's message: …", the whole chain in one line.
    public var chainDescription: String { ErrorChain.render(self) }
}

/// One step of a chain, outermost first.
public struct ErrorLink: Sendable, Equatable, CustomStringConvertible {
    public var layer: String
    public var message: String
    public init(layer: String, message: String) {
        self.layer = layer
        self.message = message
    }
    public var description: String { "\(layer): \(message)" }
    public var json: JSONValue { .object(["layer": .string(layer), "message": .string(message)]) }
}

/// Walks and renders cause chains.
public enum ErrorChain {
    /// Chains longer than this are cut: a cause that loops back on itself must not hang a log line.
    static let maxDepth = 16

    /// The links from outermost to innermost. An error that does not take part in chains ends
    /// it, with its type as the layer (a `ResolveError` is "resolve").
    public static func links(_ error: any Error) -> [ErrorLink] {
        var out: [ErrorLink] = []
        var next: (any Error)? = error
        while let e = next, out.count < maxDepth {
            if let chained = e as? any ChainedError {
                if !chained.message.isEmpty { out.append(ErrorLink(layer: chained.layer, message: chained.message)) }
                next = chained.cause
            } else if let boxed = e as? UnderlyingError {
                next = boxed.error
            } else {
                out.append(ErrorLink(layer: layerName(of: e), message: "\(e)"))
                next = nil
            }
        }
        return out
    }

    /// The messages joined with ": ".
    public static func render(_ error: any Error) -> String {
        links(error).map(\.message).joined(separator: ": ")
    }

    /// `[{"layer": …, "message": …}, …]`, outermost first.
    public static func json(_ error: any Error) -> JSONValue {
        .array(links(error).map(\.json))
    }

    /// "ResolveError" -> "resolve", "SocketError" -> "socket": the type name without "Error",
    /// in snake case.
    static func layerName(of error: any Error) -> String {
        var name = String(describing: type(of: error))
        if name.hasSuffix("Error"), name.count > 5 { name.removeLast(5) }
        var out = ""
        for (i, c) in name.enumerated() {
            if c.isUppercase && i > 0 { out.append("_") }
            out.append(contentsOf: c.lowercased())
        }
        return out
    }
}

/// Any error kept as a cause inside an `Equatable` error enum: equal when their texts are.
/// It is transparent in a chain (the error inside is what shows).
public struct UnderlyingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let error: any Error
    public init(_ error: any Error) { self.error = error }
    public var description: String { ErrorChain.render(error) }
    public static func == (a: UnderlyingError, b: UnderlyingError) -> Bool {
        ObjectIdentifier(type(of: a.error)) == ObjectIdentifier(type(of: b.error)) && a.description == b.description
    }
}
