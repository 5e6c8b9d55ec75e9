import CShims

/// Readiness of a file descriptor, as epoll reports it.
public struct IOEvents: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = IOEvents(rawValue: shim_EPOLLIN())
    public static let writable = IOEvents(rawValue: shim_EPOLLOUT())
    public static let error = IOEvents(rawValue: shim_EPOLLERR())
    public static let hangup = IOEvents(rawValue: shim_EPOLLHUP())
    public static let none: IOEvents = []

    public var description: String {
        var parts: [String] = []
        if contains(.readable) { parts.append("in") }
        if contains(.writable) { parts.append("out") }
        if contains(.error) { parts.append("err") }
        if contains(.hangup) { parts.append("hup") }
        return parts.joined(separator: "|")
    }
}

/// Something the loop wakes up when its file descriptor is ready.
public protocol IOHandler: AnyObject {
    func handleIO(_ events: IOEvents)
}
