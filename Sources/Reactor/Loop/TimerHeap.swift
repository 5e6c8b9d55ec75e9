/// A timer on the loop. Cancel it with `cancel()`; a cancelled or fired timer never fires again.
public final class LoopTimer {
    let deadline: Deadline
    let sequence: UInt64            // FIFO tie-break for equal deadlines (as libuv does)
    var heapIndex: Int = -1         // position in the heap, -1 when not scheduled
    var callback: (() -> Void)?
    unowned let loop: EventLoop

    init(loop: EventLoop, deadline: Deadline, sequence: UInt64, callback: @escaping () -> Void) {
        self.loop = loop
        self.deadline = deadline
        self.sequence = sequence
        self.callback = callback
    }

    public var isScheduled: Bool { heapIndex >= 0 }

    public func cancel() {
        if heapIndex >= 0 { loop.timers.remove(self) }
        callback = nil
    }
}

/// Binary min-heap of timers ordered by (deadline, sequence). Insert, remove and pop are O(log n);
/// each timer knows its index, so cancellation removes it at once instead of leaving a tombstone.
struct TimerHeap {
    private(set) var items: [LoopTimer] = []

    var count: Int { items.count }
    var first: LoopTimer? { items.first }

    private static func before(_ a: LoopTimer, _ b: LoopTimer) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.sequence < b.sequence
    }

    mutating func insert(_ t: LoopTimer) {
        t.heapIndex = items.count
        items.append(t)
        siftUp(items.count - 1)
    }

    mutating func popFirst() -> LoopTimer? {
        guard let top = items.first else { return nil }
        remove(top)
        return top
    }

    mutating func remove(_ t: LoopTimer) {
        let i = t.heapIndex
        guard i >= 0, i < items.count, items[i] === t else { return }
        let last = items.count - 1
        if i != last {
            items.swapAt(i, last)
            items[i].heapIndex = i
        }
        items.removeLast()
        t.heapIndex = -1
        if i < items.count {
            siftDown(i)
            siftUp(i)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            items[i].heapIndex = i
            items[parent].heapIndex = parent
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && Self.before(items[l], items[m]) { m = l }
            if r < n && Self.before(items[r], items[m]) { m = r }
            if m == i { return }
            items.swapAt(i, m)
            items[i].heapIndex = i
            items[m].heapIndex = m
            i = m
        }
    }
}
