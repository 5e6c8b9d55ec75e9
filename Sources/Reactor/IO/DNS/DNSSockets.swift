/// The sockets c-ares has open, mirrored into loop registrations. c-ares' sock-state callback
/// lands here: (fd, readable, writable) registers or re-aims the fd; (fd, 0, 0) comes just
/// before c-ares closes it, so the loop lets go of it first. A separate object from
/// `DNSChannel` so that c-ares can still call it while the channel is being torn down.
final class DNSSockets {
    /// Weak for the same reason as `DNSChannel.loop`: c-ares closes its sockets in
    /// `ares_destroy`, which may run after the loop is gone.
    weak var loop: EventLoop?
    weak var channel: DNSChannel?
    private var open: Set<Int32> = []

    init(loop: EventLoop) {
        self.loop = loop
    }

    func update(fd: Int32, readable: Bool, writable: Bool) {
        guard let loop else { return }
        var interest: IOEvents = []
        if readable { interest.insert(.readable) }
        if writable { interest.insert(.writable) }
        if interest.isEmpty {
            if open.remove(fd) != nil { loop.deregister(fd: fd) }
        } else if open.contains(fd) {
            loop.setInterest(fd: fd, interest)
        } else {
            do {
                try loop.register(fd: fd, interest: interest, handler: DNSSocket(fd: fd, sockets: self))
                open.insert(fd)
            } catch {
                // The query on it then ends at its timeout, which is reported as such.
                loop.logger.error("cannot watch a DNS socket", metadata: ["fd": "\(fd)", "error": "\(error)"])
            }
        }
    }
}

/// One c-ares socket's loop registration: readiness goes to `ares_process_fd` for this fd.
private final class DNSSocket: IOHandler {
    let fd: Int32
    unowned let sockets: DNSSockets

    init(fd: Int32, sockets: DNSSockets) {
        self.fd = fd
        self.sockets = sockets
    }

    func handleIO(_ events: IOEvents) {
        sockets.channel?.process(fd: fd, events)
    }
}
