import CShims
import Glibc
import Synchronization

/// The loop's only thread-safe door: other threads post closures, the loop runs them.
/// An eventfd wakes the loop; writes to it are coalesced (one per batch of posts).
final class PostQueue: Sendable {
    typealias Task = @Sendable (EventLoop) -> Void
    let eventFD: Int32
    private let tasks = Mutex<[Task]>([])

    init() throws(SocketError) {
        let fd = shim_eventfd()
        guard fd >= 0 else { throw SocketError(operation: "eventfd") }
        eventFD = fd
    }

    deinit { Glibc.close(eventFD) }

    func post(_ task: @escaping Task) {
        let wasEmpty = tasks.withLock { queue -> Bool in
            queue.append(task)
            return queue.count == 1
        }
        if wasEmpty {
            var one: UInt64 = 1
            _ = Glibc.write(eventFD, &one, 8)
        }
    }

    /// Called on the loop when the eventfd is readable.
    func drain() -> [Task] {
        var counter: UInt64 = 0
        _ = Glibc.read(eventFD, &counter, 8)
        return tasks.withLock { queue in
            let taken = queue
            queue.removeAll()
            return taken
        }
    }
}

/// A handle to a loop that may cross threads: it can only post work to the loop.
public struct EventLoopHandle: Sendable {
    let queue: PostQueue
    public func post(_ task: @escaping @Sendable (EventLoop) -> Void) { queue.post(task) }
}
