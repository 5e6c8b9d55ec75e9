import Reactor

/// Why a tunnel session ended, in the tunnel's words ("cannot reach the tunnel server
/// wss://t.example:443"), with the lower layer's error (connect, TLS, WebSocket, SSH) as its
/// cause, so `/ready` and the hub show each layer of the failure.
public struct TunnelError: ChainedError, Sendable {
    public let message: String
    public let cause: (any Error)?

    public init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.cause = cause
    }

    public var layer: String { "tunnel" }
    public var description: String { chainDescription }
}
