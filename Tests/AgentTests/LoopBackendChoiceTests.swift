import Glibc
import Reactor
import XCTest
@testable import Agent

/// `reactor.backend` against a kernel that allows io_uring (this machine) and one that refuses
/// it (the probe failure injected through PIPEOPS_IO_URING_PROBE_FAIL, as a seccomp profile
/// would refuse io_uring_setup). e2e/test_loop_backend.py does the same with a real seccomp filter.
final class LoopBackendChoiceTests: XCTestCase {
    private func make(_ setting: ReactorBackendSetting, debug: Bool = false, environment: [String: String] = [:],
                      preferred: LoopBackend = LoopBackendChoice.measuredFaster) throws -> (EventLoop, note: String?) {
        try LoopBackendChoice.makeLoop(setting, debugLogging: debug, environment: environment, preferred: preferred) {
            backend throws(SocketError) in try EventLoop(backend: backend)
        }
    }

    func testExplicitBackendsAreWhatTheySay() throws {
        let (epoll, epollNote) = try make(.epoll)
        XCTAssertEqual(epoll.backend, .epoll)
        XCTAssertNil(epollNote)
        let (uring, uringNote) = try make(.ioUring)
        XCTAssertEqual(uring.backend, .ioUring)
        XCTAssertNil(uringNote)
    }

    func testAutoTakesTheMeasuredBackendSilently() throws {
        let (loop, note) = try make(.auto)
        XCTAssertEqual(loop.backend, LoopBackendChoice.measuredFaster)
        XCTAssertNil(note)
        let (preferringUring, uringNote) = try make(.auto, preferred: .ioUring)
        XCTAssertEqual(preferringUring.backend, .ioUring)
        XCTAssertNil(uringNote)
    }

    func testAutoFallsBackToEpollWithOneNoteThatSaysWhy() throws {
        for reason in ["EPERM", "ENOSYS"] {
            let (loop, note) = try make(.auto, environment: [LoopBackendChoice.probeFailureVariable: reason], preferred: .ioUring)
            XCTAssertEqual(loop.backend, .epoll)
            XCTAssertTrue(note?.contains("io_uring refused") == true, note ?? "no note")
            XCTAssertTrue(note?.contains(reason) == true, note ?? "no note")
        }
    }

    func testExplicitIOUringRefusedIsAStartupErrorThatSaysWhy() {
        XCTAssertThrowsError(try make(.ioUring, environment: [LoopBackendChoice.probeFailureVariable: "EPERM"])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("reactor.backend is io_uring"), text)
            XCTAssertTrue(text.contains("EPERM"), text)
        }
    }

    func testDebugLoggingKeepsAutoOnEpollForStrace() throws {
        let (loop, note) = try make(.auto, debug: true, preferred: .ioUring)
        XCTAssertEqual(loop.backend, .epoll)
        XCTAssertTrue(note?.contains("strace") == true, note ?? "no note")
        let (explicit, _) = try make(.ioUring, debug: true)
        XCTAssertEqual(explicit.backend, .ioUring, "asked for by name, io_uring it is")
    }

    func testAMalformedProbeHookIsAnError() {
        XCTAssertThrowsError(try make(.ioUring, environment: [LoopBackendChoice.probeFailureVariable: "nope"])) { error in
            XCTAssertTrue("\(error)".contains("expected one of"), "\(error)")
        }
    }
}
