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

    /// Runs the agent to completion: exit status, stdout, stderr.
    func runAgent(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting, so a full pipe cannot stall the child.
        let outText = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, outText, errText)
    }

    /// A config file with `text` in a fresh temporary directory; returns its path.
    func writeConfig(_ name: String, _ text: String) throws -> String {
        let dir = NSTemporaryDirectory() + "\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/agent.yaml", atomically: true, encoding: .utf8)
        return dir + "/agent.yaml"
    }

    func testVersionFlag() throws {
        let r = try runAgent(["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.out.hasPrefix("pipeops-agent "), r.out)
    }

    func testConfigPrintMergesLayersAndMasksSecrets() throws {
        let file = try writeConfig("agent-config-print",
                                   "agent:\n  cluster_name: \"from-file\"\n  port: 9000\npipeops:\n  token: \"file-secret-token\"\n")
        let r = try runAgent(["config", "print", "--config", file, "--port", "9100"],
                             environment: ["PIPEOPS_CLUSTER_NAME": "from-env", "PIPEOPS_TOKEN": "env-secret-token"])
        let text = r.out
        XCTAssertEqual(r.status, 0, text)
        XCTAssertTrue(text.contains("cluster_name: from-env") || text.contains("cluster_name: \"from-env\""), text)   // env over file
        XCTAssertTrue(text.contains("port: 9100"), text)                                                           // flag over file
        XCTAssertFalse(text.contains("secret-token"), "a secret was printed:\n\(text)")
        XCTAssertTrue(text.contains("***"), text)
    }

    func testConfigErrorNamesTheKeyAndTheLine() throws {
        let file = try writeConfig("agent-config-error", "agent:\n  port: 8080\ntunnel:\n  poll_interval: soon\n")
        let r = try runAgent(["config", "print", "--config", file])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("agent.yaml:4: tunnel.poll_interval"), r.err)
    }

    func testBadLogLevelIsAClearError() throws {
        let r = try runAgent(["--log-level", "loud"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--log-level"), r.err)
    }

    func testHelpAndUsageErrors() throws {
        let help = try runAgent(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.out.contains("USAGE: pipeops-agent [run] [<options>]"), help.out)
        XCTAssertTrue(help.out.contains("--set <key=value>"), help.out)
        let configHelp = try runAgent(["help", "config"])
        XCTAssertEqual(configHelp.status, 0)
        XCTAssertTrue(configHelp.out.contains("USAGE: pipeops-agent config print"), configHelp.out)
        // Usage errors exit 64 (EX_USAGE) and name what was wrong.
        for (args, expected) in [(["--bogus"], "unknown option '--bogus'"), (["--port=70000"], "--port: '70000' is not a port number"),
                                 (["--set", "novalue"], "--set novalue: expected key=value"), (["--config"], "missing value for '--config'"),
                                 (["config", "show"], "unknown config command 'show'"), (["launch"], "unknown command 'launch'"),
                                 (["config", "print", "--log-format", "json"], "unknown option '--log-format'")] {
            let r = try runAgent(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(expected), "\(args): \(r.err)")
        }
    }

    func testFlagsWithEqualsSignsReachTheConfiguration() throws {
        let r = try runAgent(["config", "print", "--port=9200", "--set=tunnel.poll_interval=7s", "--api-url", "http://127.0.0.1:1"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("port: 9200"), r.out)
        XCTAssertTrue(r.out.contains("poll_interval: 7s") || r.out.contains("poll_interval: \"7s\""), r.out)
        XCTAssertTrue(r.out.contains("http://127.0.0.1:1"), r.out)
    }
}
