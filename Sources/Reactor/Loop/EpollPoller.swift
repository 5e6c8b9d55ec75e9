import CShims
import Glibc

/// The loop's first backend: one epoll instance, level-triggered, one `epoll_ctl` per interest
/// change. What `strace` shows of the loop is all here.
final class EpollPoller: Poller {
    private let fd: Int32
    var backend: LoopBackend { .epoll }

    init() throws(SocketError) {
        fd = shim_epoll_create()
        guard fd >= 0 else { throw SocketError(operation: "epoll_create1") }
    }

    deinit { Glibc.close(fd) }

    func add(fd: Int32, interest: IOEvents, token: UInt64, drainsEachWake: Bool) throws(SocketError) {
        guard shim_epoll_ctl(self.fd, EPOLL_CTL_ADD, fd, interest.rawValue, token) == 0 else {
            throw SocketError(operation: "epoll_ctl(ADD, fd=\(fd))")
        }
    }

    func modify(fd: Int32, interest: IOEvents, token: UInt64) throws(SocketError) {
        guard shim_epoll_ctl(self.fd, EPOLL_CTL_MOD, fd, interest.rawValue, token) == 0 else {
            throw SocketError(operation: "epoll_ctl(MOD, fd=\(fd))")
        }
    }

    func remove(fd: Int32) {
        _ = shim_epoll_ctl(self.fd, EPOLL_CTL_DEL, fd, 0, 0)
    }

    func wait(into events: UnsafeMutableBufferPointer<shim_epoll_event>, timeoutMilliseconds: Int32) throws(SocketError) -> Int {
        let n = shim_epoll_wait(fd, events.baseAddress, Int32(events.count), timeoutMilliseconds)
        if n >= 0 { return Int(n) }
        if shim_errno() == EINTR { return 0 }
        throw SocketError(operation: "epoll_wait")
    }
}
