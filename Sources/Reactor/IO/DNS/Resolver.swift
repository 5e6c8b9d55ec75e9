import CShims
import Glibc

/// Name resolution on the loop, one thread in every mode. Numeric addresses and `localhost`
/// answer at once, then the hosts file (`HostsFile`), then cached answers (`DNSCache`), and
/// everything else goes to c-ares on the loop (`DNSChannel`).
/// * Coalescing: lookups of one name while its query runs wait on that query, so a burst of
///   dials to one host (forwards reconnecting after a tunnel drop) sends one query, not fifty.
/// * Cache: answers live for their TTL (capped), NXDOMAIN/NODATA briefly; timeouts and server
///   errors are not kept, so the next lookup asks again.
/// * Limits: each query has a deadline (`settings.timeout`); at most `settings.maxLookups`
///   names wait for DNS at once (and 8 times as many callers on them), and more fail at once
///   rather than queue. A query past its deadline keeps its slot until c-ares lets go of it
///   (its attempts fit into the same deadline), so the cap bounds sockets and memory too.
public final class Resolver {
    public typealias Completion = (Result<[SocketAddress], ResolveError>) -> Void

    unowned let loop: EventLoop
    public let settings: ResolverSettings
    private var channel: DNSChannel
    /// resolv.conf is read when a channel is made (c-ares 1.18 has no reinit); a reload asked
    /// for while queries run waits until the last one ends.
    private var channelReloadWanted = false
    private var cache: DNSCache
    /// Queries with callers still waiting, by lower-cased name (the coalescing table).
    private var waiting: [String: PendingQuery] = [:]
    private var waiterCount = 0
    /// c-ares queries not finished yet, abandoned ones (past their deadline) included.
    private var queriesRunning = 0
    private var nextQueryID: UInt64 = 0
    private var hosts: HostsFile?

    /// Callers that may wait on the queries in flight, per allowed query: enough for a burst of
    /// dials to a few names, still a bound on closures held.
    static let callersPerLookup = 8

    /// Where `HostsFile` reads from; setting it takes effect at the next `invalidateHostsCache`.
    public var hostsPath: String

    public init(loop: EventLoop, settings: ResolverSettings = ResolverSettings()) throws(ResolverSetupError) {
        self.loop = loop
        self.settings = settings
        hostsPath = settings.hostsPath
        cache = DNSCache(capacity: settings.cacheSize)
        channel = try DNSChannel(loop: loop, settings: settings)
    }

    /// The servers c-ares asks, as `host:port` (from resolv.conf or `settings.servers`).
    public var servers: [String] { channel.servers }

    /// Rereads the hosts file and resolv.conf and forgets cached answers (call on SIGHUP).
    public func invalidateHostsCache() {
        hosts = nil
        cache.removeAll()
        channelReloadWanted = true
        reloadChannelIfIdle()
    }

    private func reloadChannelIfIdle() {
        guard channelReloadWanted, queriesRunning == 0 else { return }
        channelReloadWanted = false
        do {
            channel = try DNSChannel(loop: loop, settings: settings)
        } catch {
            loop.logger.error("DNS settings not reloaded; the previous ones stay", metadata: ["error": "\(error)"])
        }
    }

    /// Ends every lookup waiting for DNS with `cancelled` (the loop is shutting down).
    public func cancelAll() {
        channel.cancelAll()
    }

    /// `completion` runs once, on the loop, never before this returns.
    public func resolve(host: String, port: Int, completion: @escaping Completion) {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let answer = immediateAnswer(name, port: port) {
            loop.deferred { completion(answer) }
            return
        }
        let key = name.lowercased()
        switch cache.answer(for: key, now: loop.now) {
        case .addresses(let addresses)?:
            loop.deferred { completion(.success(addresses.map { $0.with(port: port) })) }
            return
        case .failure(let error)?:
            loop.deferred { completion(.failure(error.renamed(name))) }
            return
        case nil:
            break
        }
        guard waiterCount < settings.maxLookups * Self.callersPerLookup,
              waiting[key] != nil || queriesRunning < settings.maxLookups else {
            let error = ResolveError.tooManyLookups(host: name, limit: settings.maxLookups)
            loop.deferred { completion(.failure(error)) }
            return
        }
        waiterCount += 1
        if let query = waiting[key] {
            query.waiters.append(PendingQuery.Waiter(host: name, port: port, completion: completion))
            return
        }
        start(name, key: key, first: PendingQuery.Waiter(host: name, port: port, completion: completion))
    }

    private func start(_ name: String, key: String, first: PendingQuery.Waiter) {
        nextQueryID &+= 1
        let query = PendingQuery(id: nextQueryID, key: key, first: first)
        waiting[key] = query
        queriesRunning += 1
        query.deadline = loop.schedule(in: settings.timeout) { [weak self, weak query] in
            guard let self, let query else { return }
            self.expire(query)
        }
        loop.logger.debug("resolving", metadata: ["host": "\(name)", "via": "c-ares"])
        let id = query.id
        channel.lookup(name) { [weak self] answer in
            self?.finished(id: id, key: key, answer)
        }
    }

    private func finished(id: UInt64, key: String, _ answer: DNSChannel.Answer) {
        queriesRunning -= 1
        // Not while c-ares is still inside the old channel's callback.
        if channelReloadWanted && queriesRunning == 0 { loop.deferred { [weak self] in self?.reloadChannelIfIdle() } }
        let query = waiting[key].flatMap { $0.id == id ? $0 : nil }
        let outcome = outcome(of: answer, host: query?.waiters.first?.host ?? key)
        remember(outcome, ttl: answer.ttl, key: key)
        guard let query else { return }   // abandoned at its deadline; the answer still went to the cache
        waiting[key] = nil
        query.deadline?.cancel()
        complete(query, outcome)
    }

    private func expire(_ query: PendingQuery) {
        guard waiting[query.key] === query else { return }
        waiting[query.key] = nil
        let host = query.waiters.first?.host ?? query.key
        complete(query, .failure(.timedOut(host: host, servers: channel.servers, after: settings.timeout)))
    }

    private func complete(_ query: PendingQuery, _ outcome: Result<[SocketAddress], ResolveError>) {
        waiterCount -= query.waiters.count
        for waiter in query.waiters {
            let result = outcome.map { $0.map { $0.with(port: waiter.port) } }.mapError { $0.renamed(waiter.host) }
            loop.deferred { waiter.completion(result) }
        }
        query.waiters.removeAll()
    }

    private func remember(_ outcome: Result<[SocketAddress], ResolveError>, ttl: TimeAmount?, key: String) {
        switch outcome {
        case .success(let addresses):
            cache.store(.addresses(addresses), for: key, ttl: min(ttl ?? .zero, settings.maxTTL), now: loop.now)
        case .failure(let error):
            switch error {
            case .noSuchName, .noAddress: cache.store(.failure(error), for: key, ttl: settings.negativeTTL, now: loop.now)
            default: break   // timeouts and server trouble may pass: ask again next time
            }
        }
    }

    private func outcome(of answer: DNSChannel.Answer, host: String) -> Result<[SocketAddress], ResolveError> {
        let servers = channel.servers
        switch answer.status {
        case ARES_SUCCESS: return answer.addresses.isEmpty ? .failure(.noAddress(host: host)) : .success(answer.addresses)
        case ARES_ENOTFOUND: return .failure(.noSuchName(host: host))
        case ARES_ENODATA: return .failure(.noAddress(host: host))
        case ARES_ETIMEOUT: return .failure(.timedOut(host: host, servers: servers, after: settings.timeout))   // its attempts fill the deadline
        case ARES_EREFUSED: return .failure(.refused(host: host, servers: servers))
        case ARES_ESERVFAIL, ARES_ENOTIMP, ARES_EFORMERR, ARES_EBADRESP: return .failure(.serverFailure(host: host, servers: servers))
        case ARES_ECONNREFUSED: return .failure(.unreachable(host: host, servers: servers))
        case ARES_EBADNAME: return .failure(.badName(host: host, why: "rejected by c-ares"))
        case ARES_ECANCELLED, ARES_EDESTRUCTION: return .failure(.cancelled(host: host))
        default: return .failure(.failed(host: host, reason: String(cString: ares_strerror(answer.status))))
        }
    }

    private func immediateAnswer(_ host: String, port: Int) -> Result<[SocketAddress], ResolveError>? {
        if let address = try? SocketAddress(ip: host, port: port) { return .success([address]) }
        let lower = host.lowercased()
        if lower == "localhost" || lower.hasSuffix(".localhost") {
            return .success([try? SocketAddress(ip: "127.0.0.1", port: port), try? SocketAddress(ip: "::1", port: port)].compactMap { $0 })
        }
        if let why = HostName.problem(host) { return .failure(.badName(host: host, why: why)) }
        if hosts == nil { hosts = HostsFile(path: hostsPath) }
        if let addresses = hosts?.addresses(of: host, port: port) { return .success(addresses) }
        return nil
    }
}

/// One c-ares query and the callers waiting for it.
private final class PendingQuery {
    struct Waiter {
        let host: String
        let port: Int
        let completion: Resolver.Completion
    }

    let id: UInt64
    let key: String
    var waiters: [Waiter]
    var deadline: LoopTimer?

    init(id: UInt64, key: String, first: Waiter) {
        self.id = id
        self.key = key
        waiters = [first]
    }
}
