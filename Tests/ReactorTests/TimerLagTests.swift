import Glibc
import XCTest
@testable import Reactor

final class TimerLagTests: XCTestCase {
    func testPercentilesAreNearestRankOverTheLastSamplesOnly() {
        var lag = TimerLag()
        XCTAssertNil(lag.percentileMilliseconds(0.5))
        // 1...100 ms: p50 is the 50th value, p99 the 99th.
        for ms in 1...100 { lag.record(.milliseconds(Int64(ms))) }
        XCTAssertEqual(lag.percentilesMilliseconds([0.5, 0.99, 1.0]), [50, 99, 100])
        XCTAssertEqual(lag.percentileMilliseconds(0), 1)
        // A full ring of 7 ms lags pushes every older sample out.
        for _ in 0..<TimerLag.capacity { lag.record(.milliseconds(7)) }
        XCTAssertEqual(lag.percentilesMilliseconds([0.5, 0.99, 1.0]), [7, 7, 7])
        XCTAssertEqual(lag.recorded, 100 + UInt64(TimerLag.capacity))
        // Microsecond resolution; a negative lag (never measured so) counts as none.
        lag.record(.microseconds(1_500))
        lag.record(.nanoseconds(-5))
        XCTAssertEqual(lag.percentileMilliseconds(0), 0)
    }

    /// A timer due while a callback holds the loop for 60 ms fires at least that late, and the
    /// loop says so: the lag is measured by the loop itself, from the deadline to the call.
    func testALoopBlockedByACallbackReportsTheLateTimer() throws {
        let loop = try makeLoop()
        let firedBefore = loop.timersFired
        var done = false
        loop.schedule(in: .milliseconds(1)) {
            loop.schedule(in: .milliseconds(5)) { done = true }
            let until = Deadline.now() + .milliseconds(60)
            while Deadline.now() < until {}   // busy: the second timer's deadline passes meanwhile
        }
        XCTAssertTrue(loop.run(until: { done }, timeout: .seconds(10)))
        XCTAssertEqual(loop.timersFired - firedBefore, 2)
        let p100 = try XCTUnwrap(loop.timerLag.percentileMilliseconds(1.0))
        XCTAssertGreaterThanOrEqual(p100, 55, "the late timer waited at least 60 - 5 ms past its deadline")
        XCTAssertEqual(loop.timerLag.recorded, 2)
    }
}
