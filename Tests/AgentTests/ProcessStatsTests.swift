import Foundation
import XCTest
@testable import Agent

/// The runtime numbers from /proc, each checked against a second source that does not share
/// our parsing: the kernel's own counters (getrlimit, clock_gettime), ps, or a change the
/// test makes and knows the size of.
final class ProcessStatsTests: XCTestCase {
    func testStatParsingCountsFieldsAfterACommandNameWithSpacesAndParentheses() {
        // Fields 3...22 after "(a) b) c)": state S, then 4..22 numbered by their position.
        let line = "4242 (a) b) c) S " + (4...22).map { String($0 * 10) }.joined(separator: " ") + " 230 240\n"
        let fields = Array(line.utf8).withUnsafeBytes { ProcessStats.parseStat($0) }
        XCTAssertEqual(fields?.utime, 140)
        XCTAssertEqual(fields?.stime, 150)
        XCTAssertEqual(fields?.starttime, 220)
        XCTAssertEqual(fields?.rssPages, 240)
        XCTAssertNil(Array("no parenthesis".utf8).withUnsafeBytes { ProcessStats.parseStat($0) })
    }

    func testOpenFileDescriptorsFollowWhatTheTestOpens() throws {
        let before = try XCTUnwrap(ProcessStats.read().openFDs)
        var pipes: [[Int32]] = []
        for _ in 0..<8 {
            var fds: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&fds), 0)
            pipes.append(fds)
        }
        XCTAssertEqual(ProcessStats.read().openFDs, before + 16)
        for p in pipes { close(p[0]); close(p[1]) }
        XCTAssertEqual(ProcessStats.read().openFDs, before)
    }

    func testTheFileDescriptorLimitIsTheSoftRLimit() {
        var rl = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl), 0)
        XCTAssertEqual(ProcessStats.read().maxFDs, Int(rl.rlim_cur))
    }

    /// 64 MiB written page by page is resident: RSS (from /proc/self/stat) and the peak (VmHWM
    /// in /proc/self/status) grow by about that much, and so does the heap (a block that size
    /// is mmapped, which mallinfo2 counts). A quick read leaves the last two out.
    func testResidentMemoryPeakAndHeapGrowWithAnAllocationTheTestTouches() throws {
        let before = ProcessStats.read()
        let size = 64 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { block.deallocate() }
        for offset in stride(from: 0, to: size, by: 4096) { block.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
        let after = ProcessStats.read()
        let quick = ProcessStats.read(detailed: false)
        XCTAssertNil(quick.peakResidentBytes)
        XCTAssertNil(quick.heapBytes)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(quick.residentBytes), try XCTUnwrap(after.residentBytes) - (1 << 20))
        let rss0 = try XCTUnwrap(before.residentBytes), rss1 = try XCTUnwrap(after.residentBytes)
        XCTAssertGreaterThanOrEqual(rss1, rss0 + UInt64(size) - (1 << 20), "rss \(rss0) -> \(rss1)")
        // The kernel's RSS counters are per-CPU sums read approximately and VmHWM is raised
        // lazily, so the peak read after the RSS can sit a few pages below it (CI saw 40 KiB):
        // the peak holds the block, give or take the same 1 MiB.
        let peak = try XCTUnwrap(after.peakResidentBytes)
        XCTAssertGreaterThanOrEqual(peak, rss0 + UInt64(size) - (1 << 20), "peak \(peak), rss \(rss0) -> \(rss1)")
        // The heap counts what was allocated and freed around the two reads too: the same slack.
        let heap0 = try XCTUnwrap(before.heapBytes), heap1 = try XCTUnwrap(after.heapBytes)
        XCTAssertGreaterThanOrEqual(heap1, heap0 + UInt64(size) - (1 << 20), "heap \(heap0) -> \(heap1)")
    }

    /// CPU time burnt by this thread (CLOCK_THREAD_CPUTIME_ID, read by the kernel without our
    /// parsing) shows in the process's user + system seconds, to the 10 ms tick.
    func testCPUSecondsGrowByTheTimeTheTestBurns() throws {
        func threadCPU() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }
        let before = try XCTUnwrap(ProcessStats.read().cpuSeconds)
        let start = threadCPU()
        var x: UInt64 = 1
        while threadCPU() - start < 0.3 { for _ in 0..<10_000 { x = x &* 6364136223846793005 &+ 1 } }
        let after = try XCTUnwrap(ProcessStats.read().cpuSeconds)
        XCTAssertNotEqual(x, 0)
        XCTAssertGreaterThanOrEqual(after - before, 0.3 - 0.02, "cpu \(before) -> \(after)")
    }

    /// `ps -o etimes=` (seconds since start, from procps) agrees with the start time we derive
    /// from /proc/stat's btime and our start tick.
    func testStartTimeAgreesWithPs() throws {
        let start = try XCTUnwrap(ProcessStats.startTimeSeconds())
        let ps = Process()
        ps.executableURL = URL(fileURLWithPath: "/bin/ps")
        ps.arguments = ["-o", "etimes=", "-p", "\(getpid())"]
        let out = Pipe()
        ps.standardOutput = out
        try ps.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ps.waitUntilExit()
        let elapsed = try XCTUnwrap(Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), text)
        // ps counts from the kernel's uptime, we from its boot time (btime): compare on that basis,
        // not against the wall clock, which on a VM drifts from btime by seconds since boot.
        let uptime = try XCTUnwrap(Double(try String(contentsOfFile: "/proc/uptime", encoding: .utf8).split(separator: " ")[0]))
        let btime = try XCTUnwrap(try String(contentsOfFile: "/proc/stat", encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6)) })
        // etimes is whole seconds, truncated: the start lies within a second or so of this.
        XCTAssertEqual(start, btime + uptime - elapsed, accuracy: 2.0, "start \(start), ps says \(elapsed) s ago")
    }
}
