import CShims

/// What the loop needs from the kernel's readiness machinery, so that `EventLoop` runs on epoll
/// or on io_uring without anything above it (timers, posts, signals, TCP, TLS, HTTP, WebSocket,
/// SSH) knowing which.
///
/// The contract is epoll's level-triggered one, because the handlers are written against it: a
/// handler may stop reading early (a bounded number of reads per wake-up keeps one busy socket
/// from starving the others) and expects to be called again on the next turn while the fd stays
/// ready; error and hangup are reported whatever the interest. `token` is the loop's own; a
/// poller hands it back with each event, and the loop tells stale events apart by it.
protocol Poller: AnyObject {
    var backend: LoopBackend { get }
    /// `drainsEachWake`: the handler consumes all readiness each time it is called (the post
    /// queue's eventfd, the signalfd), so a poller may notify it on edges only.
    func add(fd: Int32, interest: IOEvents, token: UInt64, drainsEachWake: Bool) throws(SocketError)
    func modify(fd: Int32, interest: IOEvents, token: UInt64) throws(SocketError)
    /// After this, no event for `fd` is reported; the caller closes the descriptor next.
    func remove(fd: Int32)
    /// Waits at most `timeoutMilliseconds` (-1: no limit, 0: no wait) and writes the ready
    /// tokens into `events`; returns how many. An interrupted wait returns 0.
    func wait(into events: UnsafeMutableBufferPointer<shim_epoll_event>, timeoutMilliseconds: Int32) throws(SocketError) -> Int
}

/// Which kernel interface a loop waits on.
public enum LoopBackend: String, Sendable, CaseIterable, CustomStringConvertible {
    case epoll
    case ioUring = "io_uring"

    public var description: String { rawValue }
}
