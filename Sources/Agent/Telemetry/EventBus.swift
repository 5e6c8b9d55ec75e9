import CShims
import Reactor

/// One thing that happened, as every live surface shows it: the WebSocket hub (`event`
/// messages), Server-Sent Events and the dashboard's timeline.
struct AgentEvent {
    /// Increasing from 1; the SSE `id:` and what `Last-Event-ID` names.
    let id: UInt64
    /// `tunnel_state`, `forward_opened`, `forward_closed`, `registration`, `health_update`,
    /// `kubernetes_event`, `log` (agent-http-api.md).
    let name: String
    let timestamp: String
    let data: JSONValue
    /// `data` as one line of JSON, encoded once for every subscriber.
    let dataJSON: String
}

/// Publishes each event once and fans it out: to every subscriber (hub, SSE streams) at once,
/// and into a ring of the last `capacity` events that reconnecting SSE clients replay from.
/// Loop-owned: publishers and subscribers all run on the loop.
final class EventBus {
    typealias Subscriber = (AgentEvent) -> Void
    struct Subscription: Hashable { fileprivate let id: Int }

    let capacity: Int
    private var ring: [AgentEvent] = []
    private var start = 0
    private(set) var lastID: UInt64 = 0
    /// In subscription order; an array, so telling them allocates nothing per event.
    private var subscribers: [(id: Int, tell: Subscriber)] = []
    private var nextSubscription = 0

    init(capacity: Int = 1000) {
        self.capacity = max(1, capacity)
        ring.reserveCapacity(min(self.capacity, 64))
    }

    func publish(_ name: String, _ data: JSONValue) {
        lastID &+= 1
        let event = AgentEvent(id: lastID, name: name, timestamp: Timestamp.rfc3339(nanoseconds: shim_realtime_ns()),
                               data: data, dataJSON: data.text())
        if ring.count < capacity {
            ring.append(event)
        } else {
            ring[start] = event
            start = (start + 1) % capacity
        }
        // A subscriber may unsubscribe (or subscribe) while being told: the loop walks the array
        // as it was (copy on write).
        for s in subscribers { s.tell(event) }
    }

    func subscribe(_ subscriber: @escaping Subscriber) -> Subscription {
        nextSubscription += 1
        subscribers.append((nextSubscription, subscriber))
        return Subscription(id: nextSubscription)
    }

    func unsubscribe(_ s: Subscription) { subscribers.removeAll { $0.id == s.id } }

    /// The events after `id`, oldest first. `complete` is false when some of them have already
    /// left the ring (the client missed more than it can be given).
    func events(after id: UInt64) -> (events: [AgentEvent], complete: Bool) {
        guard id < lastID else { return ([], true) }
        var out: [AgentEvent] = []
        for i in 0..<ring.count {
            let e = ring[(start + i) % ring.count]
            if e.id > id { out.append(e) }
        }
        let complete = (out.first?.id ?? lastID + 1) == id + 1
        return (out, complete)
    }
}
