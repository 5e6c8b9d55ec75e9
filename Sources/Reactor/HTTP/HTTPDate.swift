import Glibc

/// The `Date` header value (IMF-fixdate), formatted at most once a second.
final class HTTPDateCache {
    private var second: time_t = -1
    private(set) var value: [UInt8] = []

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    func current() -> [UInt8] {
        let now = time(nil)
        if now != second {
            second = now
            value = Self.format(now)
        }
        return value
    }

    static func format(_ t: time_t) -> [UInt8] {
        var t = t
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let s = "\(days[Int(tmv.tm_wday) % 7]), \(two(tmv.tm_mday)) \(months[Int(tmv.tm_mon) % 12]) \(tmv.tm_year + 1900) "
            + "\(two(tmv.tm_hour)):\(two(tmv.tm_min)):\(two(tmv.tm_sec)) GMT"
        return Array(s.utf8)
    }
}

extension JSONText {
    /// `{"error": "<message>", "status": <code>}`, the agent's error shape.
    public static func errorBody(_ message: String, status: Int) -> String {
        "{\"error\":\(quoted(message)),\"status\":\(status)}"
    }
}
