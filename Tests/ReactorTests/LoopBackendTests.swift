import Glibc
import XCTest
@testable import Reactor

/// The suite runs once per backend (PIPEOPS_TEST_BACKEND); these make sure it really ran on the
/// one it names, and cover what only the backends themselves see.
final class LoopBackendTests: XCTestCase {
    func testTheSuiteRunsOnTheBackendItNames() throws {
        let loop = try makeLoop()
        XCTAssertEqual(loop.backend, try testLoopBackend())
    }

    /// Registering the same fd twice is refused on either backend (epoll says EEXIST).
    func testRegisteringAnFdTwiceIsRefused() throws {
        let loop = try makeLoop()
        final class Ignore: IOHandler { func handleIO(_ events: IOEvents) {} }
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        try loop.register(fd: fds[0], interest: .readable, handler: Ignore())
        XCTAssertThrowsError(try loop.register(fd: fds[0], interest: .readable, handler: Ignore())) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EEXIST)
        }
        loop.deregister(fd: fds[0])
    }

    /// Level-triggered on both: a handler that reads less than is there is called again.
    func testUnreadBytesWakeTheHandlerAgain() throws {
        let loop = try makeLoop()
        final class OneByteReader: IOHandler {
            let fd: Int32
            var got: [UInt8] = []
            init(fd: Int32) { self.fd = fd }
            func handleIO(_ events: IOEvents) {
                var byte: UInt8 = 0
                if read(fd, &byte, 1) == 1 { got.append(byte) }
            }
        }
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let reader = OneByteReader(fd: fds[0])
        try loop.register(fd: fds[0], interest: .readable, handler: reader)
        XCTAssertEqual(write(fds[1], "abc", 3), 3)
        XCTAssertTrue(loop.run(until: { reader.got.count == 3 }, timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: reader.got, as: UTF8.self), "abc")
        loop.deregister(fd: fds[0])
    }
}
