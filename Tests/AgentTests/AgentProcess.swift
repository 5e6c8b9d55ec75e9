import Foundation
import XCTest

/// The real pipeops-agent binary as a child process, its stderr (the log) going to a file so
/// it can be read while the agent runs. Every wait has a limit; a child that outlives the test
/// is killed.
final class AgentProcess {
    let process = Process()
    private let errFile: String

    /// `asUser`: run with that uid and gid (through setpriv), for permission tests as root.
    init(_ arguments: [String], asUser uid: Int? = nil, environment: [String: String] = [:]) throws {
        if let uid {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--", ExecutableTests.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: ExecutableTests.binary)
            process.arguments = arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        errFile = NSTemporaryDirectory() + "agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).err"
        _ = FileManager.default.createFile(atPath: errFile, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errFile))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: errFile)
    }

    var stderr: String { (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? "" }
    var status: Int32 { process.terminationStatus }

    /// True when the agent exited within `limit`; otherwise it is killed and false returned.
    func waitForExit(limit: TimeInterval = 15) -> Bool {
        let end = Date().addingTimeInterval(limit)
        while process.isRunning && Date() < end { usleep(20_000) }
        let exited = !process.isRunning
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return exited
    }

    /// True once the log contains `text` (within `limit`, while the agent runs).
    func waitForLog(_ text: String, limit: TimeInterval = 15) -> Bool {
        let end = Date().addingTimeInterval(limit)
        while Date() < end {
            if stderr.contains(text) { return true }
            if !process.isRunning { return stderr.contains(text) }
            usleep(20_000)
        }
        return false
    }

    /// SIGTERM, then waits for the exit.
    func stop() -> Bool {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        return waitForExit()
    }
}
