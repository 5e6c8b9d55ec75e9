import CShims
import Glibc
import Logging
import Synchronization

public struct ResolveError: Error, Sendable, CustomStringConvertible {
    public let host: String
    public let reason: String
    public var description: String { "cannot resolve '\(host)': \(reason)" }
}

/// Name resolution that never blocks the loop. Numeric addresses and `localhost` are answered
/// at once, names in /etc/hosts from a cached copy, and everything else by getaddrinfo on one
/// named thread ("resolver") that hands results back through an eventfd.
public final class Resolver: IOHandler {
    public typealias Completion = (Result<[SocketAddress], ResolveError>) -> Void

    unowned let loop: EventLoop
    private let worker: ResolverWorker
    private var pending: [UInt64: Completion] = [:]
    private var nextID: UInt64 = 0
    private var hostsTable: [String: [String]]?
    public var hostsPath = "/etc/hosts"

    public init(loop: EventLoop) throws(SocketError) {
        self.loop = loop
        worker = try ResolverWorker()
        try loop.register(fd: worker.completionFD, interest: .readable, handler: self)
    }

    deinit {
        worker.shutdown()
    }

    /// Reloads /etc/hosts on next use (call on SIGHUP).
    public func invalidateHostsCache() { hostsTable = nil }

    public func resolve(host: String, port: Int, completion: @escaping Completion) {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let immediate = immediateAnswer(name, port: port) {
            loop.deferred { completion(immediate) }
            return
        }
        nextID &+= 1
        pending[nextID] = completion
        loop.logger.debug("resolving", metadata: ["host": "\(name)", "via": "getaddrinfo"])
        worker.submit(ResolverWorker.Job(id: nextID, host: name, port: port))
    }

    private func immediateAnswer(_ host: String, port: Int) -> Result<[SocketAddress], ResolveError>? {
        if host.isEmpty { return .failure(ResolveError(host: host, reason: "empty host name")) }
        if let a = try? SocketAddress(ip: host, port: port) { return .success([a]) }
        if host.lowercased() == "localhost" || host.lowercased().hasSuffix(".localhost") {
            return .success([try? SocketAddress(ip: "127.0.0.1", port: port), try? SocketAddress(ip: "::1", port: port)].compactMap { $0 })
        }
        if hostsTable == nil { hostsTable = Self.parseHosts(path: hostsPath) }
        if let ips = hostsTable?[host.lowercased()] {
            let addrs = ips.compactMap { try? SocketAddress(ip: $0, port: port) }
            if !addrs.isEmpty { return .success(addrs.sorted { !$0.isIPv6 && $1.isIPv6 }) }
        }
        return nil
    }

    /// name (lower-cased) -> addresses, in file order.
    static func parseHosts(path: String) -> [String: [String]] {
        guard let file = fopen(path, "r") else { return [:] }
        defer { fclose(file) }
        var table: [String: [String]] = [:]
        var line: UnsafeMutablePointer<CChar>?
        var cap = 0
        while getline(&line, &cap, file) > 0 {
            guard let l = line else { break }
            var text = String(cString: l)
            if let hash = text.firstIndex(of: "#") { text = String(text[..<hash]) }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            guard fields.count >= 2 else { continue }
            for name in fields.dropFirst() { table[name.lowercased(), default: []].append(String(fields[0])) }
        }
        free(line)
        return table
    }

    public func handleIO(_ events: IOEvents) {
        for done in worker.takeResults() {
            guard let completion = pending.removeValue(forKey: done.id) else { continue }
            completion(done.result)
        }
    }
}

/// The resolver thread: blocks on its own eventfd for jobs, runs getaddrinfo, and signals the
/// loop through a second (non-blocking) eventfd the loop watches.
final class ResolverWorker: Sendable {
    struct Job: Sendable { let id: UInt64; let host: String; let port: Int }
    struct Done: Sendable { let id: UInt64; let result: Result<[SocketAddress], ResolveError> }

    let completionFD: Int32
    private let jobFD: Int32
    private let state = Mutex<(jobs: [Job], results: [Done], stopping: Bool, started: Bool)>(([], [], false, false))

    init() throws(SocketError) {
        let c = shim_eventfd()
        guard c >= 0 else { throw SocketError(operation: "eventfd") }
        let j = eventfd(0, Int32(EFD_CLOEXEC))
        guard j >= 0 else { Glibc.close(c); throw SocketError(operation: "eventfd") }
        completionFD = c
        jobFD = j
    }

    deinit {
        Glibc.close(completionFD)
        Glibc.close(jobFD)
    }

    func submit(_ job: Job) {
        let needsThread = state.withLock { s -> Bool in
            s.jobs.append(job)
            if s.started { return false }
            s.started = true
            return true
        }
        if needsThread { startThread() }
        var one: UInt64 = 1
        _ = Glibc.write(jobFD, &one, 8)
    }

    func shutdown() {
        let running = state.withLock { s -> Bool in s.stopping = true; return s.started }
        if running {
            var one: UInt64 = 1
            _ = Glibc.write(jobFD, &one, 8)
        }
    }

    func takeResults() -> [Done] {
        var counter: UInt64 = 0
        _ = Glibc.read(completionFD, &counter, 8)
        return state.withLock { s in
            let r = s.results
            s.results.removeAll()
            return r
        }
    }

    private func startThread() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let worker = Unmanaged<ResolverWorker>.fromOpaque(raw).takeRetainedValue()
            shim_set_thread_name("resolver")
            worker.serve()
            return nil
        }, context)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<ResolverWorker>.fromOpaque(context).release()
        }
    }

    private func serve() {
        while true {
            var counter: UInt64 = 0
            _ = Glibc.read(jobFD, &counter, 8)   // blocks this thread only
            while true {
                let next = state.withLock { s -> (Job?, Bool) in
                    if s.stopping { return (nil, true) }
                    return (s.jobs.isEmpty ? nil : s.jobs.removeFirst(), false)
                }
                if next.1 { return }
                guard let job = next.0 else { break }
                let done = Done(id: job.id, result: Self.lookup(job.host, port: job.port))
                state.withLock { $0.results.append(done) }
                var one: UInt64 = 1
                _ = Glibc.write(completionFD, &one, 8)
            }
        }
    }

    static func lookup(_ host: String, port: Int) -> Result<[SocketAddress], ResolveError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            return .failure(ResolveError(host: host, reason: String(cString: gai_strerror(rc))))
        }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            if let sa = ai.pointee.ai_addr, ai.pointee.ai_addrlen <= MemoryLayout<sockaddr_storage>.size {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { dst in
                    dst.baseAddress!.copyMemory(from: sa, byteCount: Int(ai.pointee.ai_addrlen))
                }
                let addr = SocketAddress(storage: storage, length: ai.pointee.ai_addrlen)
                if !out.contains(addr) { out.append(addr) }
            }
            cur = ai.pointee.ai_next
        }
        return out.isEmpty ? .failure(ResolveError(host: host, reason: "no addresses")) : .success(out)
    }
}
