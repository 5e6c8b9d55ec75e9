import Reactor

/// Go-style duration text: `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`, `"1.5h"`, and plain numbers
/// meaning seconds (`30`, `0.5`). Units: ns, us (or µs), ms, s, m, h. Negative values are refused:
/// no setting of the agent takes one.
public enum DurationText {
    /// Upper bound, so arithmetic below can never overflow (about 292 years fits in Int64 ns;
    /// a config never needs more than a few days).
    static let maxNanoseconds: Double = 100 * 365 * 24 * 3600 * 1e9

    public static func parse(_ text: String) -> TimeAmount? {
        let s = text.trimmingSpaces
        guard !s.isEmpty else { return nil }
        if let plain = Double(s), plain.isFinite {
            // Double("") and Double("inf") aside, a plain number is seconds.
            guard plain >= 0, plain * 1e9 <= maxNanoseconds, s.allSatisfy({ $0.isNumber || $0 == "." }) else { return nil }
            return .nanoseconds(Int64((plain * 1e9).rounded()))
        }
        var total: Double = 0
        var rest = Substring(s)
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1,
                  let value = Double(number.hasPrefix(".") ? "0" + number : String(number))
            else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: { !($0.isASCII && ($0.isNumber || $0 == ".")) })
            guard let scale = unitScale(unit) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * scale
            guard total <= maxNanoseconds else { return nil }
        }
        return .nanoseconds(Int64(total.rounded()))
    }

    /// The shortest Go-like text for `amount`: `30s`, `1h30m`, `250ms`, `1m0.5s` is written
    /// `1m500ms`; zero is `0s`.
    public static func format(_ amount: TimeAmount) -> String {
        var ns = amount.nanoseconds
        if ns == 0 { return "0s" }
        if ns < 0 { return "-" + format(.nanoseconds(ns == .min ? .max : -ns)) }
        var out = ""
        let units: [(String, Int64)] = [
            ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
            ("ms", 1_000_000), ("us", 1_000), ("ns", 1),
        ]
        for (name, size) in units where ns >= size {
            out += "\(ns / size)\(name)"
            ns %= size
        }
        return out
    }

    private static func unitScale(_ unit: Substring) -> Double? {
        switch unit {
        case "ns": return 1
        case "us", "µs", "μs": return 1e3
        case "ms": return 1e6
        case "s": return 1e9
        case "m": return 60e9
        case "h": return 3600e9
        default: return nil
        }
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
