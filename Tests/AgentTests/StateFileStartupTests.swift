import Foundation
import XCTest

/// The real binary against state files it must not replace (issue 15, defects 4 and 5): it
/// stops with a clear error instead of starting as a new agent, and never hangs on one.
final class StateFileStartupTests: XCTestCase {
    /// A standalone agent (no control plane, no tunnel traffic) with its state at `statePath`.
    private func config(in dir: String, statePath: String) throws -> String {
        let file = dir + "/agent.yaml"
        try "pipeops:\n  api_url: \"\"\ntunnel:\n  enabled: false\nstate:\n  path: \(statePath)\nagent:\n  port: 0\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        return file
    }

    private func makeDirectory(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    private func run(_ arguments: [String], asUser uid: Int? = nil) throws -> (exited: Bool, status: Int32, err: String) {
        let agent = try AgentProcess(arguments, asUser: uid)
        let exited = agent.waitForExit()
        return (exited, agent.status, agent.stderr)
    }

    /// A state file the agent's user may not read: a startup error that says so, and the file
    /// is left as it was. Before, the agent started with a new identity and overwrote it.
    func testStateFileWithoutReadPermissionStopsTheStart() throws {
        let dir = try makeDirectory("state-unreadable")
        let state = dir + "/state.json"
        let original = #"{"agent_id": "agent-keep-me", "cluster_id": "cluster-keep-me", "updated_at": "2026-01-01T00:00:00Z"}"#
        try original.write(toFile: state, atomically: false, encoding: .utf8)
        let file = try config(in: dir, statePath: state)
        let result: (exited: Bool, status: Int32, err: String)
        if getuid() == 0 {
            // Root reads anything: run as nobody, for whom the root-owned 0600 file is closed.
            chmod(state, 0o600)
            result = try run(["--config", file, "--log-format", "json"], asUser: 65534)
        } else {
            chmod(state, 0o000)
            result = try run(["--config", file, "--log-format", "json"])
        }
        XCTAssertTrue(result.exited, "the agent started with an unreadable state file: \(result.err)")
        XCTAssertEqual(result.status, 1, result.err)
        XCTAssertTrue(result.err.contains("cannot read state file \(state): Permission denied"), result.err)
        chmod(state, 0o600)
        XCTAssertEqual(try String(contentsOfFile: state, encoding: .utf8), original)
    }

    /// A FIFO as state.path: refused at once. Before, opening it waited for a writer for ever,
    /// and SIGTERM could not end that wait (signals are blocked for signalfd by then).
    func testFIFOAsStatePathIsRefusedWithoutHanging() throws {
        let dir = try makeDirectory("state-fifo")
        let state = dir + "/state.json"
        XCTAssertEqual(mkfifo(state, 0o600), 0)
        let file = try config(in: dir, statePath: state)
        let result = try run(["--config", file, "--log-format", "json"])
        XCTAssertTrue(result.exited, "the agent hung on a FIFO state file: \(result.err)")
        XCTAssertEqual(result.status, 1, result.err)
        XCTAssertTrue(result.err.contains("cannot read state file \(state): it is a FIFO, not a regular file"), result.err)
    }
}
