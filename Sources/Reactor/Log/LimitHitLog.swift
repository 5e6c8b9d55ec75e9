/// Reports a limit that is hit (connections refused, channels refused) at most once per
/// interval, with how many hits there were, instead of a line per hit: a flood of refusals must
/// not become a flood of log lines. The first hit is reported at once; the hits that follow
/// within the interval are reported together when it ends.
public final class LimitHitLog {
    public unowned let loop: EventLoop
    public let interval: TimeAmount
    /// Every hit so far.
    public private(set) var total: UInt64 = 0
    /// Writes one line: `hits` since the last line, and the interval they fell in.
    private let report: (_ hits: UInt64, _ interval: TimeAmount) -> Void
    private var unreported: UInt64 = 0
    private var timer: LoopTimer?

    public init(loop: EventLoop, interval: TimeAmount = .seconds(10),
                report: @escaping (_ hits: UInt64, _ interval: TimeAmount) -> Void) {
        self.loop = loop
        self.interval = interval
        self.report = report
    }

    public func record() {
        total &+= 1
        unreported &+= 1
        if timer == nil { flush() }
    }

    private func flush() {
        guard unreported > 0 else { timer = nil; return }
        let hits = unreported
        unreported = 0
        timer = loop.schedule(in: interval) { [weak self] in self?.flush() }
        report(hits, interval)
    }
}
