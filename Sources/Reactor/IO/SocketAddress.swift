import CShims
import Glibc

/// An IPv4 or IPv6 address with a port. Printed as `127.0.0.1:80` or `[::1]:80`.
public struct SocketAddress: Sendable, CustomStringConvertible, Hashable {
    var storage: sockaddr_storage
    var length: socklen_t

    /// A numeric address; throws for host names (resolve those with `Resolver`).
    public init(ip: String, port: Int) throws(AddressError) {
        guard (0...65535).contains(port) else { throw AddressError(message: "port \(port) out of range 0-65535") }
        var s = sockaddr_storage()
        var len: socklen_t = 0
        guard shim_sockaddr_from_ip(ip, UInt16(port), &s, &len) == 0 else {
            throw AddressError(message: "'\(ip)' is not a numeric IPv4 or IPv6 address")
        }
        storage = s
        length = len
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    public var family: Int32 { Int32(storage.ss_family) }

    public var ip: String {
        var s = storage
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buf in
            _ = shim_sockaddr_to_ip(&s, buf.baseAddress, 64)
            return String(cString: buf.baseAddress!)
        }
    }

    public var port: Int {
        var s = storage
        var buf = [CChar](repeating: 0, count: 64)
        return Int(shim_sockaddr_to_ip(&s, &buf, 64))
    }

    public var isIPv6: Bool { Int32(storage.ss_family) == AF_INET6 }

    /// The same address with another port (sin_port and sin6_port share offset 2, big-endian).
    public func with(port: Int) -> SocketAddress {
        var copy = self
        let value = UInt16(clamping: port)
        withUnsafeMutableBytes(of: &copy.storage) { raw in
            raw[2] = UInt8(value >> 8)
            raw[3] = UInt8(value & 0xff)
        }
        return copy
    }

    public var description: String { isIPv6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }

    /// Splits `host:port`, `[v6]:port`; the port is required.
    public static func splitHostPort(_ text: String) throws(AddressError) -> (host: String, port: Int) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw AddressError(message: "'\(text)': missing ']'") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw AddressError(message: "'\(text)': expected ':port' after ']'") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw AddressError(message: "'\(text)': expected host:port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw AddressError(message: "'\(text)': IPv6 addresses need brackets, like [::1]:80") }
        }
        // Digits only: Int() also takes a sign, and "-0" or "+80" is no port anyone writes.
        guard !portText.isEmpty, portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let port = Int(portText), (0...65535).contains(port) else {
            throw AddressError(message: "'\(text)': port '\(portText)' is not a number in 0-65535")
        }
        return (String(host), port)
    }
}

public struct AddressError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
