import Foundation
import XCTest

/// Runs the real pipeops-agent binary.
final class ExecutableTests: XCTestCase {
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["PIPEOPS_AGENT_BIN"], !b.isEmpty { return b }
        // swift test runs from the package root; the debug binary sits next to the test bundle.
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return dir.appendingPathComponent("pipeops-agent").path
    }

    func testSIGTERMExitsZeroAndLogsTheShutdown() throws {
        let binary = Self.binary
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary), "no agent binary at \(binary)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        let dir = NSTemporaryDirectory() + "agent-sigterm-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Standalone (no control plane), state in a temp dir: the test sends no traffic anywhere.
        try "pipeops:\n  api_url: \"\"\nstate:\n  path: \(dir)/state.json\nagent:\n  port: 0\n".write(toFile: dir + "/agent.yaml", atomically: true, encoding: .utf8)
        process.arguments = ["--config", dir + "/agent.yaml", "--log-level", "debug", "--log-format", "json"]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait for the start-up line before signalling.
        var output = Data()
        let handle = stderr.fileHandleForReading
        while !String(decoding: output, as: UTF8.self).contains("agent starting") {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            output.append(chunk)
        }
        XCTAssertTrue(String(decoding: output, as: UTF8.self).contains("agent starting"))
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        output.append(handle.readDataToEndOfFile())
        let text = String(decoding: output, as: UTF8.self)
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("\"msg\":\"shutdown requested\""), text)
        XCTAssertTrue(text.contains("\"signal\":\"SIGTERM\""), text)
        XCTAssertTrue(text.contains("pipeops-agent stopped"), text)
    }

    func testVersionFlag() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--version"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertTrue(text.hasPrefix("pipeops-agent "), text)
    }

    func testBadLogLevelIsAClearError() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--log-level", "loud"]
        let err = Pipe()
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(process.terminationStatus, 0)
        XCTAssertTrue(text.contains("--log-level"), text)
    }
}
