/// Why a message could not be parsed. `status` is what a server answers before closing.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case malformed            // 400
        case headTooLarge         // 431: head or header count over the limit
        case bodyTooLarge         // 413
        case notImplemented       // 501: a transfer coding we do not speak
        case versionNotSupported  // 505
        case truncated            // the peer closed mid-message
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var status: Int {
        switch kind {
        case .malformed, .truncated: return 400
        case .headTooLarge: return 431
        case .bodyTooLarge: return 413
        case .notImplemented: return 501
        case .versionNotSupported: return 505
        }
    }

    public var description: String { "HTTP \(status): \(message)" }
}
