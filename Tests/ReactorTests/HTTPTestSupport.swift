import Foundation
import Logging
import XCTest
@testable import Reactor

/// Helpers for tests that put real peers (curl, wrk, python) against our code on 127.0.0.1.
enum Peers {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/http")

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// The absolute path of `tool`, or a test failure naming it.
    static func require(_ tool: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        XCTFail("\(tool) is not installed (see scripts/apt-packages.txt / Tests/requirements.txt)", file: file, line: line)
        return nil
    }
}

/// A child process whose output goes to temp files (no pipe to fill up and block it).
final class PeerProcess {
    let process = Process()
    let outURL: URL
    let errURL: URL

    init(_ executable: String, _ args: [String], environment: [String: String]? = nil) throws {
        let dir = FileManager.default.temporaryDirectory
        outURL = dir.appendingPathComponent("peer-\(UUID().uuidString).out")
        errURL = dir.appendingPathComponent("peer-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        if let environment { process.environment = environment }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
    }

    var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
    var stdoutData: Data { (try? Data(contentsOf: outURL)) ?? Data() }
    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// Waits (blocking; use before the loop runs) for a "PORT <n>" line.
    func waitForPort(timeout: TimeInterval = 20) -> Int? {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            for line in stdout.split(separator: "\n") where line.hasPrefix("PORT ") {
                return Int(line.dropFirst(5))
            }
            if !process.isRunning { return nil }
            usleep(20_000)
        }
        return nil
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
}

extension EventLoop {
    /// Runs the loop until `condition` holds, checking at least every 5 ms (so conditions that
    /// change outside the loop — a child process exiting — are seen).
    @discardableResult
    func spin(until condition: () -> Bool, timeout: TimeAmount = .seconds(30)) -> Bool {
        var ticking = true
        func tick() {
            guard ticking else { return }
            schedule(in: .milliseconds(5)) { tick() }
        }
        tick()
        defer { ticking = false }
        return run(until: condition, timeout: timeout)
    }

    /// Runs the loop while `peer` runs; returns false on timeout (the peer is then killed).
    @discardableResult
    func spin(while peer: PeerProcess, timeout: TimeAmount = .seconds(30)) -> Bool {
        let ok = spin(until: { !peer.isRunning }, timeout: timeout)
        if !ok { peer.process.terminate() }
        return ok
    }
}

/// The loop backend the Reactor suite runs on: `PIPEOPS_TEST_BACKEND` (`epoll`, the default, or
/// `io_uring`), so one suite covers both (scripts/test.sh runs it once per backend). A backend
/// that cannot be set up fails the test that asked for it; nothing falls back quietly.
func testLoopBackend() throws -> LoopBackend {
    guard let name = ProcessInfo.processInfo.environment["PIPEOPS_TEST_BACKEND"], !name.isEmpty else { return .epoll }
    guard let backend = LoopBackend(rawValue: name) else {
        throw TestFailure("PIPEOPS_TEST_BACKEND=\(name): expected one of \(LoopBackend.allCases.map(\.rawValue))")
    }
    return backend
}

func makeLoop(logger: Logger = Logger(label: "reactor")) throws -> EventLoop {
    Socket.raiseOpenFileLimit()
    return try EventLoop(backend: testLoopBackend(), logger: logger)
}

func loopback(_ port: Int = 0) throws -> SocketAddress { try SocketAddress(ip: "127.0.0.1", port: port) }
