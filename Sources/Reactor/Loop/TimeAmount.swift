import CShims

/// A span of time in nanoseconds. Deadlines are points on the monotonic clock (`Deadline`).
public struct TimeAmount: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static func nanoseconds(_ n: Int64) -> TimeAmount { TimeAmount(nanoseconds: n) }
    public static func microseconds(_ n: Int64) -> TimeAmount { TimeAmount(nanoseconds: n * 1_000) }
    public static func milliseconds(_ n: Int64) -> TimeAmount { TimeAmount(nanoseconds: n * 1_000_000) }
    public static func seconds(_ n: Int64) -> TimeAmount { TimeAmount(nanoseconds: n * 1_000_000_000) }
    public static func fractionalSeconds(_ s: Double) -> TimeAmount { TimeAmount(nanoseconds: Int64(s * 1e9)) }
    public static let zero = TimeAmount(nanoseconds: 0)

    public var seconds: Double { Double(nanoseconds) / 1e9 }
    public var milliseconds: Int64 { nanoseconds / 1_000_000 }
    public static func < (a: TimeAmount, b: TimeAmount) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: TimeAmount, b: TimeAmount) -> TimeAmount { .nanoseconds(a.nanoseconds + b.nanoseconds) }
    public static func * (a: TimeAmount, b: Int64) -> TimeAmount { .nanoseconds(a.nanoseconds * b) }
    /// `30s`, `250ms`, `1.38s`, `91ms`: exact when round, else to the millisecond or 10 ms.
    public var description: String {
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds >= 1_000_000_000 {
            let centis = (nanoseconds + 5_000_000) / 10_000_000
            let frac = centis % 100
            return "\(centis / 100).\(frac < 10 ? "0" : "")\(frac)s"
        }
        if nanoseconds >= 1_000_000 { return "\((nanoseconds + 500_000) / 1_000_000)ms" }
        return "\(nanoseconds)ns"
    }
}

/// A point on the monotonic clock, in nanoseconds since an arbitrary origin.
public struct Deadline: Sendable, Hashable, Comparable {
    public var uptimeNanoseconds: UInt64
    public init(uptimeNanoseconds: UInt64) { self.uptimeNanoseconds = uptimeNanoseconds }
    public static func now() -> Deadline { Deadline(uptimeNanoseconds: shim_monotonic_ns()) }
    public static func < (a: Deadline, b: Deadline) -> Bool { a.uptimeNanoseconds < b.uptimeNanoseconds }
    public static func + (d: Deadline, t: TimeAmount) -> Deadline {
        Deadline(uptimeNanoseconds: t.nanoseconds <= 0 ? d.uptimeNanoseconds : d.uptimeNanoseconds &+ UInt64(t.nanoseconds))
    }
    public static func - (a: Deadline, b: Deadline) -> TimeAmount {
        .nanoseconds(Int64(bitPattern: a.uptimeNanoseconds &- b.uptimeNanoseconds))
    }
}
