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

    func testConfigPrintMergesLayersAndMasksSecrets() throws {
        let dir = NSTemporaryDirectory() + "agent-config-print-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "agent:\n  cluster_name: \"from-file\"\n  port: 9000\npipeops:\n  token: \"file-secret-token\"\n".write(toFile: dir + "/agent.yaml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["config", "print", "--config", dir + "/agent.yaml", "--port", "9100"]
        var env = ProcessInfo.processInfo.environment
        env["PIPEOPS_CLUSTER_NAME"] = "from-env"
        env["PIPEOPS_TOKEN"] = "env-secret-token"
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("cluster_name: from-env") || text.contains("cluster_name: \"from-env\""), text)   // env over file
        XCTAssertTrue(text.contains("port: 9100"), text)                                                           // flag over file
        XCTAssertFalse(text.contains("secret-token"), "a secret was printed:\n\(text)")
        XCTAssertTrue(text.contains("***"), text)
    }

    func testConfigErrorNamesTheKeyAndTheLine() throws {
        let dir = NSTemporaryDirectory() + "agent-config-error-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "agent:\n  port: 8080\ntunnel:\n  poll_interval: soon\n".write(toFile: dir + "/agent.yaml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["config", "print", "--config", dir + "/agent.yaml"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 2)
        XCTAssertTrue(text.contains("agent.yaml:4: tunnel.poll_interval"), text)
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
