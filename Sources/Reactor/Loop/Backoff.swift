/// Exponential backoff with jitter: initial, initial x factor, ... capped at `maximum`, each
/// delay shortened by a random fraction of up to `jitter` so that many agents restarting at
/// once do not retry in lock-step.
public struct Backoff: Sendable {
    public let initial: TimeAmount
    public let maximum: TimeAmount
    public let factor: Double
    public let jitter: Double
    public private(set) var attempt = 0

    public init(initial: TimeAmount, maximum: TimeAmount, factor: Double = 2, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The delay before the next attempt; each call moves one step up.
    public mutating func next() -> TimeAmount {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }

    public mutating func next<R: RandomNumberGenerator>(using generator: inout R) -> TimeAmount {
        var base = Double(initial.nanoseconds)
        for _ in 0..<min(attempt, 64) {
            base *= factor
            if base >= Double(maximum.nanoseconds) { break }
        }
        base = min(base, Double(maximum.nanoseconds))
        attempt += 1
        let cut = jitter > 0 ? Double.random(in: 0..<jitter, using: &generator) : 0
        return .nanoseconds(Int64(base * (1 - cut)))
    }

    public mutating func reset() { attempt = 0 }
}
