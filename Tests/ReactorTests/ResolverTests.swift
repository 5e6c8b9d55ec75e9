import Foundation
import XCTest
@testable import Reactor

final class ResolverTests: XCTestCase {
    func resolve(_ resolver: Resolver, _ loop: EventLoop, _ host: String, port: Int = 80) -> Result<[SocketAddress], ResolveError>? {
        var result: Result<[SocketAddress], ResolveError>?
        resolver.resolve(host: host, port: port) { result = $0 }
        _ = loop.run(until: { result != nil }, timeout: .seconds(10))
        return result
    }

    func testNumericAndLocalhostAnswerWithoutTheThread() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        XCTAssertEqual(try resolve(resolver, loop, "127.0.0.1", port: 6443)?.get().map(\.description), ["127.0.0.1:6443"])
        XCTAssertEqual(try resolve(resolver, loop, "[::1]", port: 1)?.get().map(\.description), ["[::1]:1"])
        XCTAssertEqual(try resolve(resolver, loop, "localhost", port: 8080)?.get().first?.description, "127.0.0.1:8080")
    }

    func testHostsFileEntries() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        let path = NSTemporaryDirectory() + "hosts-\(getpid())"
        try "# test hosts\n127.0.0.9  tunnel.test  alias.test\n::1 six.test # comment\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        resolver.hostsPath = path
        resolver.invalidateHostsCache()
        XCTAssertEqual(try resolve(resolver, loop, "Alias.Test", port: 5)?.get().map(\.description), ["127.0.0.9:5"])
        XCTAssertEqual(try resolve(resolver, loop, "six.test", port: 5)?.get().map(\.description), ["[::1]:5"])
    }

    func testGetaddrinfoOnTheResolverThread() throws {
        let loop = try makeLoop()
        let resolver = try Resolver(loop: loop)
        resolver.hostsPath = "/nonexistent"
        // "127.1" is not numeric for inet_pton, so it goes to getaddrinfo, which reads it as 127.0.0.1
        // without any network traffic.
        XCTAssertEqual(try resolve(resolver, loop, "127.1", port: 9)?.get().first?.description, "127.0.0.1:9")
        // A name getaddrinfo refuses outright (no lookup is sent for an empty label) fails with a reason.
        guard case .failure(let e)? = resolve(resolver, loop, "bad..name", port: 9) else { return XCTFail("expected failure") }
        XCTAssertTrue(e.description.contains("bad..name"), e.description)
    }
}
