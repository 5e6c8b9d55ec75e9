/// How late the loop's timers fired (the time from a timer's deadline to its callback): the
/// loop's own measure of how busy it is. A fixed ring of the last `capacity` lags, allocated
/// once, so recording one costs a store and never allocates; percentiles are computed only
/// when asked for.
public struct TimerLag {
    public static let capacity = 1024
    /// Microseconds, clamped to UInt32 (71 minutes).
    private var ring = [UInt32](repeating: 0, count: TimerLag.capacity)
    private var next = 0
    /// Timers measured since the loop started.
    public private(set) var recorded: UInt64 = 0

    init() {}

    @inline(__always)
    mutating func record(_ lag: TimeAmount) {
        ring[next] = UInt32(clamping: max(0, lag.nanoseconds) / 1_000)
        next = (next + 1) & (Self.capacity - 1)
        recorded &+= 1
    }

    /// The lag below which `fraction` (0...1) of the last timers fired, in milliseconds (nearest
    /// rank); nil before any timer fired.
    public func percentileMilliseconds(_ fraction: Double) -> Double? {
        percentilesMilliseconds([fraction])?.first
    }

    /// Several percentiles from one sort of the ring.
    public func percentilesMilliseconds(_ fractions: [Double]) -> [Double]? {
        let n = Int(min(recorded, UInt64(Self.capacity)))
        guard n > 0 else { return nil }
        let sorted = ring[0..<n].sorted()
        return fractions.map { f in
            let rank = Int((min(max(f, 0), 1) * Double(n)).rounded(.up))
            return Double(sorted[max(rank, 1) - 1]) / 1_000
        }
    }
}
