import Reactor

/// Takes the agent's own log lines from the `LogTap` on the loop and hands them on: to the
/// hub's `logs` subscribers and `/api/realtime/logs` streams, and warnings and errors also to
/// the event bus as `log` events (so the dashboard's timeline shows what went wrong).
final class LogStream {
    let tap: LogTap
    let bus: EventBus
    private var lastSequence: UInt64
    private var listeners: [Int: ([LogRecord]) -> Void] = [:]
    private var nextListener = 0
    private var hubListening = false
    /// The hub's delivery (it filters by subscription itself).
    var hubDeliver: (([LogRecord]) -> Void)?

    init(tap: LogTap, bus: EventBus) {
        self.tap = tap
        self.bus = bus
        lastSequence = tap.lastSequence
    }

    /// Called on the loop after the tap's wake-up.
    func drain() {
        let records = tap.records(after: lastSequence)
        guard let last = records.last else { return }
        lastSequence = last.sequence
        for r in records where r.level == "warning" || r.level == "error" || r.level == "critical" {
            bus.publish("log", LogRecordJSON.json(r))
        }
        if hubListening { hubDeliver?(records) }
        for (_, l) in listeners.sorted(by: { $0.key < $1.key }) { l(records) }
    }

    /// The newest `count` records (what a new log stream starts with).
    func recent(_ count: Int) -> [LogRecord] { Array(tap.records(after: 0).suffix(count)) }

    func addListener(_ l: @escaping ([LogRecord]) -> Void) -> Int {
        nextListener += 1
        listeners[nextListener] = l
        updateListening()
        return nextListener
    }

    func removeListener(_ id: Int) {
        listeners.removeValue(forKey: id)
        updateListening()
    }

    func setHubListening(_ on: Bool) {
        hubListening = on
        updateListening()
    }

    private func updateListening() { tap.setListening(hubListening || !listeners.isEmpty) }
}
