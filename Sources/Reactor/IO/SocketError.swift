import CShims
import Glibc

/// A failed system call: which one and its errno, e.g. `connect: ECONNREFUSED (Connection refused)`.
public struct SocketError: Error, Sendable, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32

    public init(operation: String, errno: Int32 = shim_errno()) {
        self.operation = operation
        self.errno = errno
    }

    public var errnoName: String { String(cString: shim_errno_name(errno)) }
    public var description: String {
        "\(operation): \(errnoName) (\(String(cString: strerror(errno))))"
    }
}
