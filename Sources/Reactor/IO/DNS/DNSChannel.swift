import CShims
import Glibc

/// c-ares driven by the loop: one `ares_channel` per resolver and no thread.
/// * Sockets: c-ares' sock-state callback says when it opens a socket, what it waits for on it
///   and when it closes it; each becomes a loop registration (`DNSSocket`) and readiness calls
///   `ares_process_fd` for that socket alone. No fd sets, no asking c-ares for its sockets.
/// * Time: one loop timer at `ares_timeout`'s next deadline drives retries and timeouts. It is
///   moved only when c-ares needs it sooner; firing early costs one empty `ares_process_fd`.
/// * One channel: c-ares multiplexes every query over it (a socket per server, query IDs), so a
///   slow server costs a pending timer, never a thread or a place in a queue for other names.
/// Caching, coalescing, deadlines and the in-flight cap are `Resolver`'s.
final class DNSChannel {
    struct Answer {
        var status: Int32
        /// Port 0; the caller puts in its own.
        var addresses: [SocketAddress]
        /// The smallest TTL among the address records and CNAMEs that led to them.
        var ttl: TimeAmount?
    }

    /// `host:port` of each server queries go to, for error messages.
    let servers: [String]
    private let channel: OpaquePointer
    private let sockets: DNSSockets
    /// Weak: a resolver may outlive its loop (teardown order), and its deinit then must not
    /// touch the loop's timers or registrations.
    private weak var loop: EventLoop?
    private var timer: LoopTimer?

    private static let libraryStatus: Int32 = shim_ares_library_init()

    init(loop: EventLoop, settings: ResolverSettings) throws(ResolverSetupError) {
        guard Self.libraryStatus == ARES_SUCCESS else {
            throw ResolverSetupError(message: "ares_library_init: \(String(cString: ares_strerror(Self.libraryStatus)))")
        }
        let sockets = DNSSockets(loop: loop)
        let channel = try Self.makeChannel(settings: settings, sockets: sockets)
        if let list = settings.servers {
            let rc = ares_set_servers_ports_csv(channel, list.joined(separator: ","))
            guard rc == ARES_SUCCESS else {
                ares_destroy(channel)
                throw ResolverSetupError(message: "DNS servers '\(list.joined(separator: ","))': \(String(cString: ares_strerror(rc)))")
            }
        }
        self.loop = loop
        self.sockets = sockets
        self.channel = channel
        servers = Self.serverList(channel)
        sockets.channel = self
    }

    deinit {
        if loop != nil { timer?.cancel() }
        // Ends every query with ARES_EDESTRUCTION (their owners are gone or going) and closes
        // the sockets, which the sock-state callback deregisters first.
        ares_destroy(channel)
    }

    /// Asks for A and AAAA records of `name` (search domains and ndots applied by c-ares).
    /// `done` runs exactly once, possibly before this returns (a name c-ares rejects outright).
    func lookup(_ name: String, _ done: @escaping (Answer) -> Void) {
        let box = Unmanaged.passRetained(AnswerBox(done)).toOpaque()
        var hints = ares_addrinfo_hints()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        ares_getaddrinfo(channel, name, nil, &hints, { arg, status, _, result in
            guard let arg else { return }
            let box = Unmanaged<AnswerBox>.fromOpaque(arg).takeRetainedValue()
            let answer = DNSChannel.answer(status: status, result)
            if let result { ares_freeaddrinfo(result) }
            box.done(answer)
        }, box)
        armTimer()
    }

    /// Ends every query in flight with ARES_ECANCELLED.
    func cancelAll() {
        ares_cancel(channel)
        armTimer()
    }

    func process(fd: Int32, _ events: IOEvents) {
        let read = events.isDisjoint(with: [.readable, .error, .hangup]) ? ARES_SOCKET_BAD : fd
        let write = events.contains(.writable) ? fd : ARES_SOCKET_BAD
        ares_process_fd(channel, read, write)
        armTimer()
    }

    private func armTimer() {
        var wait = timeval()
        guard ares_timeout(channel, nil, &wait) != nil else {
            timer?.cancel()
            timer = nil
            return
        }
        let due = Deadline.now() + .microseconds(Int64(wait.tv_sec) * 1_000_000 + Int64(wait.tv_usec))
        if let t = timer, t.isScheduled, t.deadline <= due { return }
        timer?.cancel()
        timer = loop?.schedule(at: due) { [weak self] in
            guard let self else { return }
            self.timer = nil
            // No socket is ready: c-ares only checks its queries' deadlines (retry or give up).
            ares_process_fd(self.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)
            self.armTimer()
        }
    }

    private static func makeChannel(settings: ResolverSettings, sockets: DNSSockets) throws(ResolverSetupError) -> OpaquePointer {
        var options = ares_options()
        var mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_FLAGS
        // REFUSED and SERVFAIL reach us as such: without this flag c-ares 1.18 drops those
        // replies, tries again and reports ECONNREFUSED, which would tell the operator the wrong
        // thing. The cost: with several servers, one that refuses ends the lookup (glibc would
        // ask the next one).
        options.flags = ARES_FLAG_NOCHECKRESP
        options.sock_state_cb = { data, fd, readable, writable in
            guard let data else { return }
            Unmanaged<DNSSockets>.fromOpaque(data).takeUnretainedValue().update(fd: fd, readable: readable != 0, writable: writable != 0)
        }
        options.sock_state_cb_data = Unmanaged.passUnretained(sockets).toOpaque()
        let attempts = max(1, min(settings.attempts, 8))
        options.tries = Int32(attempts)
        // c-ares doubles the wait on each attempt: t + 2t + ... = (2^attempts - 1) t, which we
        // fit into the lookup's deadline for one server (the deadline still holds with more).
        options.timeout = Int32(max(50, settings.timeout.milliseconds / Int64((1 << attempts) - 1)))
        // Hosts come from `HostsFile` before c-ares is asked: "b" is DNS only.
        let lookups = strdup("b")
        defer { free(lookups) }
        options.lookups = lookups
        var owned: [UnsafeMutablePointer<CChar>?] = []
        defer { owned.forEach { free($0) } }
        if let path = settings.resolvConfPath {
            mask |= ARES_OPT_RESOLVCONF
            owned.append(strdup(path))
            options.resolvconf_path = owned.last!
        }
        if let ndots = settings.ndots {
            mask |= ARES_OPT_NDOTS
            options.ndots = Int32(max(0, min(ndots, 15)))
        }
        let domains = (settings.searchDomains ?? []).map { strdup($0) }
        defer { domains.forEach { free($0) } }
        var channel: OpaquePointer?
        let rc = domains.withUnsafeBufferPointer { list -> Int32 in
            if settings.searchDomains != nil {
                mask |= ARES_OPT_DOMAINS
                options.domains = UnsafeMutablePointer(mutating: list.baseAddress)
                options.ndomains = Int32(list.count)
            }
            return ares_init_options(&channel, &options, mask)
        }
        guard rc == ARES_SUCCESS, let channel else {
            throw ResolverSetupError(message: "ares_init_options: \(String(cString: ares_strerror(rc)))")
        }
        return channel
    }

    private static func answer(status: Int32, _ result: UnsafeMutablePointer<ares_addrinfo>?) -> Answer {
        var answer = Answer(status: status, addresses: [], ttl: nil)
        guard status == ARES_SUCCESS, let info = result?.pointee else { return answer }
        var ttl = Int32.max
        var cname = info.cnames
        while let c = cname {
            ttl = min(ttl, c.pointee.ttl)
            cname = c.pointee.next
        }
        var node = info.nodes
        while let n = node {
            if let sa = n.pointee.ai_addr, n.pointee.ai_addrlen <= MemoryLayout<sockaddr_storage>.size {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { $0.baseAddress!.copyMemory(from: sa, byteCount: Int(n.pointee.ai_addrlen)) }
                let address = SocketAddress(storage: storage, length: n.pointee.ai_addrlen).with(port: 0)
                if !answer.addresses.contains(address) { answer.addresses.append(address) }
                ttl = min(ttl, n.pointee.ai_ttl)
            }
            node = n.pointee.ai_next
        }
        answer.ttl = answer.addresses.isEmpty ? nil : .seconds(Int64(max(0, ttl)))
        return answer
    }

    private static func serverList(_ channel: OpaquePointer) -> [String] {
        var head: UnsafeMutablePointer<ares_addr_port_node>?
        guard ares_get_servers_ports(channel, &head) == ARES_SUCCESS else { return [] }
        defer { if let head { ares_free_data(head) } }
        var out: [String] = []
        var node = head
        while let n = node {
            var copy = n.pointee.addr
            let family = n.pointee.family
            let ip = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { text in
                _ = withUnsafePointer(to: &copy) { inet_ntop(family, UnsafeRawPointer($0), text.baseAddress, 64) }
                return String(cString: text.baseAddress!)
            }
            let port = n.pointee.udp_port == 0 ? 53 : n.pointee.udp_port
            out.append(family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)")
            node = n.pointee.next
        }
        return out
    }
}

/// A query's completion, carried through c-ares' `void *arg`.
private final class AnswerBox {
    let done: (DNSChannel.Answer) -> Void
    init(_ done: @escaping (DNSChannel.Answer) -> Void) { self.done = done }
}
