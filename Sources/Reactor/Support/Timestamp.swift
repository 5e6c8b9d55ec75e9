import CShims
import Glibc

/// RFC 3339 UTC timestamps without Foundation.
public enum Timestamp {
    public static func rfc3339(nanoseconds: UInt64, fractionDigits: Int = 3) -> String {
        var t = time_t(nanoseconds / 1_000_000_000)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        var out = "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))"
        if fractionDigits > 0 {
            // 3: milliseconds; 6: microseconds (Kubernetes' MicroTime); at most 9.
            let digits = min(fractionDigits, 9)
            var divisor: UInt64 = 1
            for _ in digits..<9 { divisor *= 10 }
            out += ".\(pad(Int32((nanoseconds % 1_000_000_000) / divisor), digits))"
        }
        return out + "Z"
    }

    /// Whole seconds since the epoch, e.g. for a saved state's `updated_at`.
    public static func rfc3339(seconds: Int64) -> String {
        rfc3339(nanoseconds: UInt64(max(0, seconds)) * 1_000_000_000, fractionDigits: 0)
    }

    /// Parses an RFC 3339 date-time (`2026-01-15T10:30:00Z`, `…T10:30:00.25+01:00`) into whole
    /// seconds since the epoch (fractions dropped); nil when it is not one.
    public static func parseRFC3339(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func num(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var v = 0
            for c in b[at..<at + n] {
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            return v
        }
        func at(_ i: Int, _ c: Character) -> Bool { i < b.count && b[i] == c.asciiValue }
        guard let year = num(0, 4), at(4, "-"), let month = num(5, 2), at(7, "-"), let day = num(8, 2),
              at(10, "T") || at(10, "t") || at(10, " "), let hour = num(11, 2), at(13, ":"), let minute = num(14, 2),
              at(16, ":"), let second = num(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60 else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= monthDays[month - 1] else { return nil }
        var i = 19
        if at(i, ".") {
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            guard i > start else { return nil }
        }
        var offsetSeconds = 0
        if at(i, "Z") || at(i, "z") {
            i += 1
        } else if at(i, "+") || at(i, "-"), let oh = num(i + 1, 2), at(i + 3, ":"), let om = num(i + 4, 2), oh < 24, om < 60 {
            offsetSeconds = (oh * 3600 + om * 60) * (at(i, "-") ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm), so no time zone is consulted.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds)
    }

    public static func nowSeconds() -> Int64 { Int64(shim_realtime_ns() / 1_000_000_000) }

    public static func nowNanoseconds() -> UInt64 { shim_realtime_ns() }

    public static func now(fractionDigits: Int = 0) -> String {
        rfc3339(nanoseconds: shim_realtime_ns(), fractionDigits: fractionDigits)
    }
}
