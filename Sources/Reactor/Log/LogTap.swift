import Synchronization

/// One log record as the tap keeps it (rendered text, so no logger types cross threads).
public struct LogRecord: Sendable, Equatable {
    public var sequence: UInt64
    /// Nanoseconds since the epoch.
    public var time: UInt64
    public var level: String
    public var component: String
    public var message: String
    public var metadata: [(key: String, value: String)]

    public static func == (a: LogRecord, b: LogRecord) -> Bool {
        a.sequence == b.sequence && a.time == b.time && a.level == b.level && a.component == b.component
            && a.message == b.message && a.metadata.elementsEqual(b.metadata) { $0 == $1 }
    }
}

/// A bounded copy of the process's log lines for the live log stream, filled by the log handler
/// on whatever thread logs. Recording never blocks on a reader and never grows: the oldest
/// record makes room. When someone listens (or the record is `urgent`: a warning or worse, which
/// the agent also publishes as an event), the first record of a batch calls `wake` (which posts
/// to the loop: the loop's only cross-thread door); the loop then takes the new records.
public final class LogTap: Sendable {
    private struct State {
        var ring: [LogRecord] = []
        var start = 0
        var nextSequence: UInt64 = 1
        var wakePending = false
        var listening = false
    }

    public let capacity: Int
    private let state = Mutex(State())
    private let wake = Mutex<(@Sendable () -> Void)?>(nil)

    /// Made before the loop exists (logging starts first); `setWake` connects it later.
    public init(capacity: Int = 512) {
        self.capacity = max(1, capacity)
    }

    /// What a record that someone waits for calls (a `LoopWaker`'s `wake`).
    public func setWake(_ body: @escaping @Sendable () -> Void) {
        wake.withLock { $0 = body }
    }

    /// Whether records should wake the loop (someone streams the log). Off: recording only.
    public func setListening(_ on: Bool) {
        state.withLock { $0.listening = on }
    }

    public func record(time: UInt64, level: String, component: String, message: String, metadata: [(key: String, value: String)],
                       urgent: Bool = false) {
        let shouldWake = state.withLock { s -> Bool in
            let r = LogRecord(sequence: s.nextSequence, time: time, level: level, component: component, message: message, metadata: metadata)
            s.nextSequence &+= 1
            if s.ring.count < capacity {
                s.ring.append(r)
            } else {
                s.ring[s.start] = r
                s.start = (s.start + 1) % capacity
            }
            guard s.listening || urgent, !s.wakePending else { return false }
            s.wakePending = true
            return true
        }
        if shouldWake, let body = wake.withLock({ $0 }) { body() }
    }

    /// Records newer than `sequence`, oldest first (at most the ring's worth), and re-arms the
    /// wake-up for the next batch.
    public func records(after sequence: UInt64) -> [LogRecord] {
        state.withLock { s in
            s.wakePending = false
            var out: [LogRecord] = []
            for i in 0..<s.ring.count {
                let r = s.ring[(s.start + i) % s.ring.count]
                if r.sequence > sequence { out.append(r) }
            }
            return out
        }
    }

    /// The sequence number of the newest record (0 when none).
    public var lastSequence: UInt64 { state.withLock { $0.nextSequence - 1 } }
}
