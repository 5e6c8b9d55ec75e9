import Foundation
import XCTest
@testable import Reactor

/// The c-ares resolver against a real DNS server on loopback (dnslib, Tests/Fixtures/dns) and a
/// silent UDP socket. Every resolver here has its servers set to loopback before its first lookup.
final class ResolverTests: XCTestCase {
    typealias Outcome = Result<[SocketAddress], ResolveError>

    func resolve(_ resolver: Resolver, _ loop: EventLoop, _ host: String, port: Int = 80) -> Outcome? {
        var result: Outcome?
        resolver.resolve(host: host, port: port) { result = $0 }
        _ = loop.run(until: { result != nil }, timeout: .seconds(10))
        return result
    }

    func addresses(_ outcome: Outcome?) -> Set<String> {
        guard case .success(let list)? = outcome else { return [] }
        return Set(list.map(\.description))
    }

    func error(_ outcome: Outcome?) -> ResolveError? {
        guard case .failure(let e)? = outcome else { return nil }
        return e
    }

    // MARK: answered without DNS

    func testNumericLocalhostAndHostsFileNeverReachDNS() throws {
        let loop = try makeLoop()
        let tripwire = try SilentUDPServer()
        var settings = try loopbackDNSSettings(servers: [tripwire.address])
        let hosts = NSTemporaryDirectory() + "hosts-\(UUID().uuidString)"
        try "# test hosts\n127.0.0.9  tunnel.test  alias.test\n::1 six.test # comment\n".write(toFile: hosts, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: hosts) }
        settings.hostsPath = hosts
        let resolver = try Resolver(loop: loop, settings: settings)
        XCTAssertEqual(try resolve(resolver, loop, "127.0.0.1", port: 6443)?.get().map(\.description), ["127.0.0.1:6443"])
        XCTAssertEqual(try resolve(resolver, loop, "[::1]", port: 1)?.get().map(\.description), ["[::1]:1"])
        XCTAssertEqual(try resolve(resolver, loop, "localhost", port: 8080)?.get().first?.description, "127.0.0.1:8080")
        XCTAssertEqual(try resolve(resolver, loop, "Alias.Test", port: 5)?.get().map(\.description), ["127.0.0.9:5"])
        XCTAssertEqual(try resolve(resolver, loop, "six.test", port: 5)?.get().map(\.description), ["[::1]:5"])
        // Edited hosts files are read again after invalidateHostsCache (SIGHUP).
        try "127.0.0.10 alias.test\n".write(toFile: hosts, atomically: true, encoding: .utf8)
        resolver.invalidateHostsCache()
        XCTAssertEqual(try resolve(resolver, loop, "alias.test", port: 5)?.get().map(\.description), ["127.0.0.10:5"])
        XCTAssertEqual(tripwire.drain(), 0, "a lookup answered locally went to DNS")
    }

    func testBadNamesFailWithAReasonAndSendNothing() throws {
        let loop = try makeLoop()
        let tripwire = try SilentUDPServer()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [tripwire.address]))
        let cases = ["": "empty", "bad..name": "an empty label", "127.1": "digits and dots but not an IPv4 address",
                     "has space.test": "a space or control character", "fe80:1": "a ':' but not an IPv6 address",
                     String(repeating: "a", count: 64) + ".test": "a label longer than 63 characters"]
        for (name, why) in cases {
            XCTAssertEqual(error(resolve(resolver, loop, name)), .badName(host: name, why: why), name)
        }
        XCTAssertEqual(error(resolve(resolver, loop, "bad..name"))?.description, "cannot resolve 'bad..name': not a valid host name: an empty label")
        XCTAssertEqual(tripwire.drain(), 0, "a bad name went to DNS")
    }

    // MARK: answers and failures from a real server

    func testAAndAAAAAnswersAndTheFailuresByName() throws {
        let dns = try ScriptedDNSServer(["--a", "both.test=192.0.2.1", "--aaaa", "both.test=2001:db8::1",
                                         "--a", "four.test=192.0.2.2,192.0.2.3", "--nodata", "empty.test",
                                         "--refused", "refused.test", "--servfail", "broken.test"])
        defer { dns.stop() }
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [dns.address]))
        XCTAssertEqual(resolver.servers, [dns.address])
        XCTAssertEqual(addresses(resolve(resolver, loop, "both.test", port: 443)), ["192.0.2.1:443", "[2001:db8::1]:443"])
        XCTAssertEqual(addresses(resolve(resolver, loop, "FOUR.test.", port: 7)), ["192.0.2.2:7", "192.0.2.3:7"])
        XCTAssertEqual(dns.queries(for: "both.test"), 2, "one A and one AAAA query: \(dns.queries)")

        let missing = error(resolve(resolver, loop, "missing.test"))
        XCTAssertEqual(missing, .noSuchName(host: "missing.test"))
        XCTAssertEqual(missing?.description, "cannot resolve 'missing.test': no such name (NXDOMAIN)")
        XCTAssertEqual(error(resolve(resolver, loop, "empty.test")), .noAddress(host: "empty.test"))
        let refused = error(resolve(resolver, loop, "refused.test"))
        XCTAssertEqual(refused, .refused(host: "refused.test", servers: [dns.address]))
        XCTAssertEqual(refused?.description, "cannot resolve 'refused.test': DNS server \(dns.address) refused the query (REFUSED)")
        XCTAssertEqual(error(resolve(resolver, loop, "broken.test")), .serverFailure(host: "broken.test", servers: [dns.address]))
    }

    func testATruncatedAnswerIsAskedAgainOverTCP() throws {
        // 40 A records do not fit in 512 bytes of UDP: c-ares opens a TCP connection (the
        // sock-state callback asks for writability while it connects) and asks again.
        let many = (1...40).map { "192.0.2.\($0)" }
        let dns = try ScriptedDNSServer(["--a", "big.test=" + many.joined(separator: ",")])
        defer { dns.stop() }
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [dns.address]))
        XCTAssertEqual(addresses(resolve(resolver, loop, "big.test", port: 1)), Set(many.map { "\($0):1" }))
        XCTAssertEqual(dns.queries(for: "big.test", over: "tcp"), 1, "\(dns.queries)")
    }

    func testAServerThatNeverAnswersTimesOutAtTheDeadline() throws {
        let loop = try makeLoop()
        let silent = try SilentUDPServer()
        var settings = try loopbackDNSSettings(servers: [silent.address])
        settings.timeout = .milliseconds(600)
        let resolver = try Resolver(loop: loop, settings: settings)
        let failure = error(resolve(resolver, loop, "quiet.test"))
        XCTAssertEqual(failure, .timedOut(host: "quiet.test", servers: [silent.address], after: .milliseconds(600)))
        XCTAssertEqual(failure?.description, "cannot resolve 'quiet.test': no answer from DNS server \(silent.address) within 600ms")
        XCTAssertGreaterThan(silent.drain(), 0, "the query never reached the silent server")
    }

    func testALostQueryDoesNotHoldUpOtherNames() throws {
        let dns = try ScriptedDNSServer(["--drop", "lost.test", "--a", "*.fine.test=192.0.2.5"])
        defer { dns.stop() }
        let loop = try makeLoop()
        var settings = try loopbackDNSSettings(servers: [dns.address])
        settings.timeout = .seconds(2)
        let resolver = try Resolver(loop: loop, settings: settings)
        var lost: Outcome?
        resolver.resolve(host: "lost.test", port: 1) { lost = $0 }
        var fine: [Outcome] = []
        for i in 0..<20 { resolver.resolve(host: "n\(i).fine.test", port: 1) { fine.append($0) } }
        XCTAssertTrue(loop.run(until: { fine.count == 20 }, timeout: .seconds(10)))
        XCTAssertNil(lost, "every other name was answered while the lost one still waits")
        XCTAssertEqual(fine.compactMap { try? $0.get().first?.description }, Array(repeating: "192.0.2.5:1", count: 20))
        XCTAssertTrue(loop.run(until: { lost != nil }, timeout: .seconds(10)))
        XCTAssertEqual(error(lost), .timedOut(host: "lost.test", servers: [dns.address], after: .seconds(2)))
    }

    // MARK: concurrency, limits and the single thread

    func testTwoHundredConcurrentLookupsOnOneThread() throws {
        let dns = try ScriptedDNSServer(["--a", "*.many.test=192.0.2.9", "--aaaa", "*.many.test=2001:db8::9"])
        defer { dns.stop() }
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [dns.address]))
        let threadsBefore = threadCount()
        var results: [Outcome] = []
        let started = Deadline.now()
        for i in 0..<200 { resolver.resolve(host: "h\(i).many.test", port: 80) { results.append($0) } }
        XCTAssertTrue(loop.run(until: { results.count == 200 }, timeout: .seconds(30)), "\(results.count) of 200 answered")
        print("200 concurrent lookups (400 queries) answered in \(Deadline.now() - started)")
        XCTAssertEqual(results.filter { (try? $0.get().count) == 2 }.count, 200, "\(results.filter { (try? $0.get()) == nil })")
        XCTAssertEqual(dns.queries.count, 400)
        XCTAssertEqual(threadCount(), threadsBefore, "the resolver started a thread")
    }

    func testSameNameLookupsShareOneQuery() throws {
        let dns = try ScriptedDNSServer(["--a", "shared.test=192.0.2.4", "--delay", "shared.test=0.2"])
        defer { dns.stop() }
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [dns.address]))
        var results: [Outcome] = []
        for port in 1...5 { resolver.resolve(host: port == 3 ? "SHARED.test" : "shared.test", port: port) { results.append($0) } }
        XCTAssertTrue(loop.run(until: { results.count == 5 }, timeout: .seconds(10)))
        XCTAssertEqual(Set(results.compactMap { try? $0.get().first?.description }), Set((1...5).map { "192.0.2.4:\($0)" }))
        XCTAssertEqual(dns.queries(for: "shared.test"), 2, "one A and one AAAA for five callers: \(dns.queries)")
    }

    func testLookupsOverTheCapFailAtOnce() throws {
        let loop = try makeLoop()
        let silent = try SilentUDPServer()
        var settings = try loopbackDNSSettings(servers: [silent.address])
        settings.maxLookups = 3
        settings.timeout = .seconds(1)
        let resolver = try Resolver(loop: loop, settings: settings)
        var results: [String: Outcome] = [:]
        for name in ["a.test", "b.test", "c.test", "a.test#2", "d.test"] {
            let host = name.replacingOccurrences(of: "#2", with: "")
            resolver.resolve(host: host, port: 1) { results[name] = $0 }
        }
        XCTAssertTrue(loop.run(until: { results["d.test"] != nil }, timeout: .seconds(5)))
        XCTAssertEqual(results.count, 1, "only the one over the cap has an answer yet: \(results)")
        XCTAssertEqual(error(results["d.test"]), .tooManyLookups(host: "d.test", limit: 3))
        XCTAssertEqual(error(results["d.test"])?.description, "cannot resolve 'd.test': 3 lookups already in flight (the limit); not started")
        XCTAssertTrue(loop.run(until: { results.count == 5 }, timeout: .seconds(10)))
        XCTAssertEqual(error(results["a.test#2"]), .timedOut(host: "a.test", servers: [silent.address], after: .seconds(1)))
    }

    func testCancelAllEndsWaitingLookups() throws {
        let loop = try makeLoop()
        let silent = try SilentUDPServer()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [silent.address]))
        var result: Outcome?
        resolver.resolve(host: "pending.test", port: 1) { result = $0 }
        XCTAssertTrue(loop.run(until: { silent.drain() > 0 }, timeout: .seconds(5)))
        resolver.cancelAll()
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: .seconds(5)))
        XCTAssertEqual(error(result), .cancelled(host: "pending.test"))
    }

    func testAResolverWithAQueryInFlightMayOutliveItsLoop() throws {
        let silent = try SilentUDPServer()
        var loop: EventLoop? = try makeLoop()
        var resolver: Resolver? = try Resolver(loop: loop!, settings: try loopbackDNSSettings(servers: [silent.address]))
        var result: Outcome?
        resolver?.resolve(host: "pending.test", port: 1) { result = $0 }
        XCTAssertTrue(loop!.run(until: { silent.drain() > 0 }, timeout: .seconds(5)))
        weak let weakLoop = loop
        loop = nil
        XCTAssertNil(weakLoop, "the loop is gone before the resolver")
        resolver = nil   // c-ares closes its socket and ends the query: nothing may touch the loop
        XCTAssertNil(result, "no completion runs without a loop")
    }

    // MARK: cache

    func testAnswersAreCachedForTheirTTL() throws {
        let dns = try ScriptedDNSServer(["--a", "short.test=192.0.2.10", "--ttl", "short.test=1",
                                         "--a", "long.test=192.0.2.11", "--ttl", "long.test=3600"])
        defer { dns.stop() }
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [dns.address]))
        XCTAssertEqual(addresses(resolve(resolver, loop, "long.test", port: 1)), ["192.0.2.11:1"])
        XCTAssertEqual(addresses(resolve(resolver, loop, "long.test", port: 2)), ["192.0.2.11:2"], "the cache puts in each caller's port")
        XCTAssertEqual(dns.queries(for: "long.test"), 2, "the second lookup came from the cache: \(dns.queries)")

        XCTAssertEqual(addresses(resolve(resolver, loop, "short.test")), ["192.0.2.10:80"])
        XCTAssertEqual(addresses(resolve(resolver, loop, "short.test")), ["192.0.2.10:80"])
        XCTAssertEqual(dns.queries(for: "short.test"), 2)
        var expired = false
        loop.schedule(in: .milliseconds(1_100)) { expired = true }   // let the 1 s TTL pass
        XCTAssertTrue(loop.run(until: { expired }, timeout: .seconds(5)))
        XCTAssertEqual(addresses(resolve(resolver, loop, "short.test")), ["192.0.2.10:80"])
        XCTAssertEqual(dns.queries(for: "short.test"), 4, "an expired answer is asked for again: \(dns.queries)")

        resolver.invalidateHostsCache()   // SIGHUP forgets cached answers too
        XCTAssertEqual(addresses(resolve(resolver, loop, "long.test")), ["192.0.2.11:80"])
        XCTAssertEqual(dns.queries(for: "long.test"), 4)
    }

    func testNegativeAnswersAreCachedBrieflyAndFailuresNot() throws {
        let dns = try ScriptedDNSServer(["--servfail", "flaky.test"])
        defer { dns.stop() }
        let loop = try makeLoop()
        var settings = try loopbackDNSSettings(servers: [dns.address])
        settings.negativeTTL = .seconds(60)
        settings.attempts = 1
        let resolver = try Resolver(loop: loop, settings: settings)
        XCTAssertEqual(error(resolve(resolver, loop, "gone.test")), .noSuchName(host: "gone.test"))
        XCTAssertEqual(error(resolve(resolver, loop, "Gone.test")), .noSuchName(host: "Gone.test"))
        XCTAssertEqual(dns.queries(for: "gone.test"), 2, "NXDOMAIN came from the cache the second time: \(dns.queries)")
        XCTAssertEqual(error(resolve(resolver, loop, "flaky.test")), .serverFailure(host: "flaky.test", servers: [dns.address]))
        XCTAssertEqual(error(resolve(resolver, loop, "flaky.test")), .serverFailure(host: "flaky.test", servers: [dns.address]))
        XCTAssertEqual(dns.queries(for: "flaky.test"), 4, "SERVFAIL is asked again: \(dns.queries)")
    }

    func testTheCacheKeepsAtMostItsSizeDroppingTheOldest() {
        var cache = DNSCache(capacity: 2)
        let now = Deadline.now()
        let a = DNSCache.Answer.addresses([])
        cache.store(a, for: "one", ttl: .seconds(60), now: now)
        cache.store(a, for: "two", ttl: .seconds(60), now: now)
        cache.store(a, for: "three", ttl: .seconds(60), now: now)
        XCTAssertEqual(cache.count, 2)
        XCTAssertNil(cache.answer(for: "one", now: now))
        XCTAssertNotNil(cache.answer(for: "two", now: now))
        XCTAssertNil(cache.answer(for: "two", now: now + .seconds(61)), "expired")
    }

    // MARK: resolv.conf

    func testSearchDomainsAndNdotsFromResolvConf() throws {
        let dns = try ScriptedDNSServer(["--a", "api.corp.test=192.0.2.20", "--a", "db.team.corp.test=192.0.2.21",
                                         "--a", "db.team=192.0.2.99", "--a", "svc.other.test=192.0.2.22"])
        defer { dns.stop() }
        let loop = try makeLoop()
        let conf = "search corp.test\noptions ndots:2\n"
        let resolver = try Resolver(loop: loop, settings: try loopbackDNSSettings(servers: [dns.address], resolvConf: conf))
        XCTAssertEqual(addresses(resolve(resolver, loop, "api")), ["192.0.2.20:80"])
        // One dot is fewer than ndots:2, so the search list goes first (as glibc does).
        XCTAssertEqual(addresses(resolve(resolver, loop, "db.team")), ["192.0.2.21:80"])
        XCTAssertEqual(dns.queries(for: "db.team"), 0, "\(dns.queries)")

        // SIGHUP (invalidateHostsCache) reads resolv.conf again.
        try "search other.test\noptions ndots:1\n".write(toFile: resolver.settings.resolvConfPath ?? "", atomically: true, encoding: .utf8)
        resolver.invalidateHostsCache()
        XCTAssertEqual(addresses(resolve(resolver, loop, "svc")), ["192.0.2.22:80"])

        var settings = try loopbackDNSSettings(servers: [dns.address], resolvConf: conf)
        settings.searchDomains = ["other.test"]
        settings.ndots = 1
        let overridden = try Resolver(loop: loop, settings: settings)
        XCTAssertEqual(addresses(resolve(overridden, loop, "svc")), ["192.0.2.22:80"])
        XCTAssertEqual(addresses(resolve(overridden, loop, "db.team")), ["192.0.2.99:80"], "one dot meets ndots:1: asked as is first")
    }
}
