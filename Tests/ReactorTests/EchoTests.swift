import Glibc
import XCTest
@testable import Reactor

/// A client that streams `total` bytes of a pattern to an echo server, respecting writability,
/// and compares every byte that comes back.
final class EchoClient: ByteStreamDelegate {
    let total: Int
    let seed: Int
    var sent = 0
    var receivedCount = 0
    var mismatchAt: Int?
    var done = false
    var error: ConnectionError?
    var connection: TCPConnection?
    static let block = 64 * 1024
    let pattern: [UInt8]

    init(total: Int, seed: Int, pattern: [UInt8]) {
        self.total = total
        self.seed = seed
        self.pattern = pattern
    }

    func streamDidOpen(_ stream: ByteStream) { pump(stream) }

    /// Writes until the total is out or the connection reports back-pressure.
    func pump(_ stream: ByteStream) {
        while sent < total && stream.isWritable {
            let n = min(EchoClient.block, total - sent)
            // pattern has period 251, so any offset can be served from it with a 251-byte margin.
            let off = sent % 251
            pattern.withUnsafeBytes { stream.write(UnsafeRawBufferPointer(rebasing: $0[off..<off + n])) }
            sent += n
        }
        if sent == total { stream.shutdownWrite() }
    }

    func stream(_ stream: ByteStream, writabilityChanged writable: Bool) {
        if writable { pump(stream) }
    }

    func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {
        if mismatchAt == nil {
            let off = receivedCount % 251
            let same = pattern.withUnsafeBytes { memcmp($0.baseAddress! + off, bytes.baseAddress!, bytes.count) == 0 }
            if !same { mismatchAt = receivedCount }
        }
        receivedCount += bytes.count
    }

    func streamDidReadEOF(_ stream: ByteStream) {
        done = receivedCount == total
        stream.close(nil)
    }

    func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {
        self.error = error
        if !done { done = true; if error == nil && receivedCount != total { self.error = .closedLocally("short: \(receivedCount)") } }
    }
}

final class EchoTests: XCTestCase {
    func testThousandConcurrentConnectionsEchoOneMebibyteEach() throws {
        let loop = try makeLoop()
        let server = try EchoServer(loop: loop)
        let total = 1 << 20
        let pattern = makePattern(count: 512 * 1024, seed: 7)
        var clients: [EchoClient] = []
        for i in 0..<1000 {
            let c = EchoClient(total: total, seed: i, pattern: pattern)
            c.connection = try TCPConnection.connect(loop: loop, to: server.address, timeout: .seconds(30), delegate: c)
            clients.append(c)
        }
        let finished = loop.run(until: { clients.allSatisfy { $0.done } }, timeout: .seconds(240))
        XCTAssertTrue(finished, "only \(clients.filter { $0.done }.count) of 1000 finished")
        XCTAssertEqual(clients.filter { $0.error != nil }.count, 0, "errors: \(clients.compactMap { $0.error }.prefix(3))")
        XCTAssertEqual(clients.filter { $0.mismatchAt != nil }.count, 0, "content mismatch")
        XCTAssertEqual(clients.map { $0.receivedCount }.reduce(0, +), 1000 * total)
        XCTAssertTrue(loop.run(until: { server.closed == 1000 }, timeout: .seconds(10)))
        XCTAssertEqual(server.accepted, 1000)
        server.listener.close()
    }

    func testNoDescriptorLeakAfterTenThousandConnections() throws {
        let loop = try makeLoop()
        let server = try EchoServer(loop: loop)
        let before = Socket.openDescriptorCount()
        var completed = 0
        let batch = 500
        let pattern = makePattern(count: 512 * 1024, seed: 1)
        for _ in 0..<(10_000 / batch) {
            var clients: [EchoClient] = []
            for i in 0..<batch {
                let c = EchoClient(total: 16, seed: i, pattern: pattern)
                c.connection = try TCPConnection.connect(loop: loop, to: server.address, timeout: .seconds(10), delegate: c)
                clients.append(c)
            }
            XCTAssertTrue(loop.run(until: { clients.allSatisfy { $0.done } }, timeout: .seconds(60)))
            completed += clients.filter { $0.done && $0.error == nil && $0.receivedCount == 16 }.count
        }
        XCTAssertTrue(loop.run(until: { server.connections.isEmpty }, timeout: .seconds(10)))
        XCTAssertEqual(completed, 10_000)
        XCTAssertEqual(Socket.openDescriptorCount(), before, "descriptors leaked")
        XCTAssertEqual(loop.registeredCount, 2, "only the listener and the post queue stay registered")
    }
}
