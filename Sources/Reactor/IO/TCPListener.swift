import CShims
import Glibc
import Logging

/// A listening TCP socket on the loop. Accepted descriptors are handed to `onAccept`.
///
/// When the process runs out of descriptors (EMFILE/ENFILE), a level-triggered listener would
/// wake forever. We keep one spare descriptor: on EMFILE it is closed, the pending connection is
/// accepted and closed at once (the peer sees a reset instead of hanging), and the spare is
/// reopened. The condition is logged, at most once a second.
public final class TCPListener: IOHandler {
    public unowned let loop: EventLoop
    public let fd: Int32
    public let address: SocketAddress
    private let onAccept: (Int32, SocketAddress?) -> Void
    private var spareFD: Int32
    private var lastExhaustionLog: Deadline?
    public private(set) var acceptedCount: UInt64 = 0
    public private(set) var droppedForExhaustion: UInt64 = 0

    public init(loop: EventLoop, address: SocketAddress, backlog: Int32 = 1024,
                onAccept: @escaping (Int32, SocketAddress?) -> Void) throws(SocketError) {
        self.loop = loop
        self.onAccept = onAccept
        let fd = try Socket.makeTCP(family: address.family)
        _ = shim_set_reuseaddr(fd)
        var storage = address.storage
        guard shim_bind(fd, &storage, address.length) == 0 else {
            let e = SocketError(operation: "bind \(address)")
            Glibc.close(fd)
            throw e
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = SocketError(operation: "listen \(address)")
            Glibc.close(fd)
            throw e
        }
        self.fd = fd
        self.address = Socket.localAddress(fd: fd) ?? address
        self.spareFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        do {
            try loop.register(fd: fd, interest: .readable, handler: self)
        } catch {
            Glibc.close(fd)
            if spareFD >= 0 { Glibc.close(spareFD) }
            throw error
        }
        loop.logger.debug("listening", metadata: ["fd": "\(fd)", "addr": "\(self.address)"])
    }

    /// The bound port (useful with port 0).
    public var port: Int { address.port }

    public func close() {
        guard spareFD != -2 else { return }
        loop.deregister(fd: fd)
        Glibc.close(fd)
        if spareFD >= 0 { Glibc.close(spareFD) }
        spareFD = -2
    }

    // The loop holds a registered listener strongly, so deinit runs only after `close()` or when
    // the loop itself is being destroyed; either way the loop must not be touched here.
    deinit {
        if spareFD != -2 {
            Glibc.close(fd)
            if spareFD >= 0 { Glibc.close(spareFD) }
        }
    }

    public func handleIO(_ events: IOEvents) {
        for _ in 0..<64 {
            guard spareFD != -2 else { return }
            var storage = sockaddr_storage()
            var len: socklen_t = 0
            let client = shim_accept(fd, &storage, &len)
            if client >= 0 {
                acceptedCount &+= 1
                onAccept(client, SocketAddress(storage: storage, length: len))
                continue
            }
            let e = shim_errno()
            switch e {
            case EAGAIN, EWOULDBLOCK:
                return
            case EINTR, ECONNABORTED, EPROTO:
                continue
            case EMFILE, ENFILE:
                shedOneConnection(errno: e)
                return
            default:
                loop.logger.error("accept failed", metadata: ["fd": "\(fd)", "error": "\(SocketError(operation: "accept", errno: e))"])
                return
            }
        }
    }

    private func shedOneConnection(errno e: Int32) {
        droppedForExhaustion &+= 1
        if lastExhaustionLog.map({ loop.now - $0 >= .seconds(1) }) ?? true {
            lastExhaustionLog = loop.now
            loop.logger.warning("out of file descriptors: refusing new connections until some close",
                                metadata: ["listener": "\(address)", "error": "\(SocketError(operation: "accept", errno: e))",
                                           "fd_limit": "\(Socket.openFileLimit)", "dropped": "\(droppedForExhaustion)"])
        }
        if spareFD >= 0 {
            Glibc.close(spareFD)
            var storage = sockaddr_storage()
            var len: socklen_t = 0
            let client = shim_accept(fd, &storage, &len)
            if client >= 0 { Glibc.close(client) }
            spareFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        } else {
            // No spare to trade: stop watching briefly instead of spinning.
            loop.setInterest(fd: fd, [])
            loop.schedule(in: .milliseconds(100)) { [weak self] in
                guard let self, self.spareFD != -2 else { return }
                self.spareFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
                self.loop.setInterest(fd: self.fd, .readable)
            }
        }
    }
}
