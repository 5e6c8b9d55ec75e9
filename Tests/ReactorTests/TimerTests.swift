import Foundation
import Glibc
import Synchronization
import XCTest
@testable import Reactor

final class TimerTests: XCTestCase {
    func testTenThousandTimersFireInDeadlineOrderAndCancelledNeverFire() throws {
        let loop = try makeLoop()
        var generator = SystemRandomNumberGenerator()
        var fired: [(deadline: UInt64, seq: Int)] = []
        var timers: [LoopTimer] = []
        var cancelled = Set<Int>()
        let base = Deadline.now() + .milliseconds(50)
        for i in 0..<10_000 {
            // Only 50 distinct deadlines, so many ties: ties must fire in scheduling order.
            let d = base + .milliseconds(Int64.random(in: 0..<50, using: &generator))
            timers.append(loop.schedule(at: d) { fired.append((d.uptimeNanoseconds, i)) })
        }
        for i in stride(from: 0, to: 10_000, by: 7) {
            timers[i].cancel()
            cancelled.insert(i)
        }
        XCTAssertEqual(loop.pendingTimerCount, 10_000 - cancelled.count)
        XCTAssertTrue(loop.run(until: { fired.count == 10_000 - cancelled.count && loop.pendingTimerCount == 0 }, timeout: .seconds(10)))
        XCTAssertEqual(fired.count, 10_000 - cancelled.count)
        for (a, b) in zip(fired, fired.dropFirst()) {
            XCTAssertTrue(a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq),
                          "out of order: \(a) before \(b)")
        }
        XCTAssertTrue(fired.allSatisfy { !cancelled.contains($0.seq) })
        // A timer is never early.
        XCTAssertGreaterThanOrEqual(loop.now, base)
    }

    func testCancelFromInsideAnotherTimerCallback() throws {
        let loop = try makeLoop()
        var log: [String] = []
        var second: LoopTimer?
        loop.schedule(in: .milliseconds(1)) { log.append("first"); second?.cancel() }
        second = loop.schedule(in: .milliseconds(2)) { log.append("second") }
        loop.schedule(in: .milliseconds(5)) { log.append("third") }
        XCTAssertTrue(loop.run(until: { log.contains("third") }, timeout: .seconds(5)))
        XCTAssertEqual(log, ["first", "third"])
    }

    /// A callback that re-arms at a deadline already past (as an inactivity check whose clock
    /// lagged did) once spun the loop forever inside one timer phase.
    func testATimerReArmedAtAPastDeadlineFiresOncePerTurn() throws {
        let loop = try makeLoop()
        let past = Deadline.now()
        var fired = 0
        func arm() {
            loop.schedule(at: past) {
                fired += 1
                if fired < 1000 { arm() }
            }
        }
        arm()
        loop.runOnce(maxWait: Deadline.now() + .milliseconds(100))
        XCTAssertEqual(fired, 1, "a timer scheduled inside the timer phase fired in the same phase")
        loop.runOnce(maxWait: Deadline.now() + .milliseconds(100))
        XCTAssertEqual(fired, 2)
    }

    func testATimerCallbackSeesTheLoopTimeAtOrAfterItsDeadline() throws {
        let loop = try makeLoop()
        var seen: [(Deadline, Deadline)] = []
        for ms in [1, 5, 20] {
            let deadline = Deadline.now() + .milliseconds(Int64(ms))
            loop.schedule(at: deadline) { seen.append((deadline, loop.now)) }
        }
        XCTAssertTrue(loop.run(until: { seen.count == 3 }, timeout: .seconds(5)))
        for (deadline, now) in seen { XCTAssertGreaterThanOrEqual(now, deadline) }
    }

    func testPostFromAnotherThreadRunsEveryClosureOnTheLoopThread() throws {
        let loop = try makeLoop()
        let handle = loop.handle
        let loopThread = pthread_self()
        let ranOnLoop = Atomic<Int>(0)
        let ranElsewhere = Atomic<Int>(0)
        let poster = Thread {
            for _ in 0..<1000 {
                handle.post { _ in
                    if pthread_equal(pthread_self(), loopThread) != 0 {
                        ranOnLoop.add(1, ordering: .relaxed)
                    } else {
                        ranElsewhere.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        poster.start()
        XCTAssertTrue(loop.run(until: { ranOnLoop.load(ordering: .relaxed) == 1000 }, timeout: .seconds(10)))
        XCTAssertEqual(ranElsewhere.load(ordering: .relaxed), 0)
    }
}
