import CShims
import Glibc
import Logging
import Synchronization
import XCTest
@testable import Reactor

/// Collects log messages in memory.
final class CapturedLogs: Sendable {
    let lines = Mutex<[String]>([])
    func handler(label: String) -> LogHandler { CaptureHandler(sink: self) }
    struct CaptureHandler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
        func log(event: LogEvent) {
            sink.lines.withLock { $0.append("\(event.level) \(event.message) \(event.metadata ?? [:])") }
        }
    }

    /// The lines so far that contain `text`.
    func lines(containing text: String) -> [String] { lines.withLock { $0.filter { $0.contains(text) } } }

    /// The two lines a burst of limit hits logs (`LimitHitLog`: the first hit at once, the rest
    /// together when the interval ends), each checked to be a warning; nil after a test failure.
    /// `wait` runs the loop until its condition holds or gives up.
    func limitHitLines(containing text: String, wait: (() -> Bool) -> Bool,
                       file: StaticString = #filePath, line: UInt = #line) -> [String]? {
        XCTAssertTrue(wait { self.lines(containing: text).count >= 2 }, "\(lines(containing: text))", file: file, line: line)
        let found = lines(containing: text)
        guard found.count == 2 else { XCTFail("expected 2 lines: \(found)", file: file, line: line); return nil }
        XCTAssertTrue(found.allSatisfy { $0.hasPrefix("warning ") }, "\(found)", file: file, line: line)
        return found
    }

    /// Whether `line` carries metadata `key` with `value`. Metadata prints in no fixed order, so
    /// the value ends with a comma or the closing bracket.
    static func line(_ line: String, has key: String, _ value: String) -> Bool {
        line.contains("\"\(key)\": \(value),") || line.contains("\"\(key)\": \(value)]")
    }
}

final class ListenerExhaustionTests: XCTestCase {
    func testOutOfDescriptorsShedsConnectionsWithoutSpinningAndSaysSo() throws {
        let logs = CapturedLogs()
        let loop = try makeLoop(logger: Logger(label: "test", factory: logs.handler))
        var kept: [TCPConnection] = []
        final class Sink: ByteStreamDelegate {
            func stream(_ stream: ByteStream, didRead bytes: UnsafeRawBufferPointer) {}
            func stream(_ stream: ByteStream, didCloseWith error: ConnectionError?) {}
        }
        let sink = Sink()
        let listener = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in
            if let c = try? TCPConnection(loop: loop, acceptedFD: fd, peer: peer, delegate: sink) { kept.append(c) }
        }
        // Client sockets are made before the limit drops; connecting needs no new descriptor.
        var clients: [Int32] = []
        for _ in 0..<10 { clients.append(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)) }
        var old = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &old)
        var low = old
        low.rlim_cur = rlim_t(Socket.openDescriptorCount() + 3)   // room for a couple of accepts only
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &low), 0)
        defer { var r = old; setrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) }
        var target = listener.address.storage
        for c in clients { _ = withUnsafePointer(to: &target) { shim_connect(c, $0, listener.address.length) } }

        XCTAssertTrue(loop.run(until: { listener.droppedForExhaustion >= 5 }, timeout: .seconds(5)),
                      "dropped \(listener.droppedForExhaustion), kept \(kept.count)")
        // Now idle: with the backlog empty the loop must sleep, not spin on a readable listener.
        let before = loop.iterations
        loop.run(until: { false }, timeout: .milliseconds(300))
        XCTAssertLessThan(loop.iterations - before, 20, "the loop kept waking up")
        XCTAssertTrue(logs.lines.withLock { $0.contains { $0.contains("out of file descriptors") } })
        XCTAssertEqual(Int(listener.acceptedCount) + Int(listener.droppedForExhaustion), 10)
        for c in clients { Glibc.close(c) }
        for k in kept { k.close(nil) }
        listener.close()
    }
}
