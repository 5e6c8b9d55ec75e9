/// Answers kept for their TTL: addresses (port 0; the caller's port is put in on the way out) or
/// a negative answer (NXDOMAIN, NODATA). Bounded: at `capacity` names the expired go first, then
/// the oldest stored. Eviction scans the table, which only happens on a store into a full cache.
struct DNSCache {
    enum Answer: Equatable {
        case addresses([SocketAddress])
        case failure(ResolveError)
    }

    private struct Entry {
        let answer: Answer
        let expires: Deadline
        let stored: UInt64
    }

    let capacity: Int
    private var entries: [String: Entry] = [:]
    private var storeCount: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { entries.count }

    /// The answer for `name` (lower-cased) if it has not expired.
    mutating func answer(for name: String, now: Deadline) -> Answer? {
        guard let entry = entries[name] else { return nil }
        if entry.expires <= now {
            entries[name] = nil
            return nil
        }
        return entry.answer
    }

    mutating func store(_ answer: Answer, for name: String, ttl: TimeAmount, now: Deadline) {
        guard capacity > 0, ttl > .zero else { return }
        if entries[name] == nil && entries.count >= capacity { makeRoom(now: now) }
        storeCount &+= 1
        entries[name] = Entry(answer: answer, expires: now + ttl, stored: storeCount)
    }

    mutating func removeAll() { entries.removeAll() }

    private mutating func makeRoom(now: Deadline) {
        entries = entries.filter { $0.value.expires > now }
        guard entries.count >= capacity, let oldest = entries.min(by: { $0.value.stored < $1.value.stored }) else { return }
        entries[oldest.key] = nil
    }
}
