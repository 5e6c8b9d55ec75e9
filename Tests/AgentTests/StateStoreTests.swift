import Foundation
import XCTest
@testable import Agent

final class StateStoreTests: XCTestCase {
    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try XCTUnwrap(attributes[.posixPermissions] as? Int)
    }

    func testMissingFileLoadsAsNil() throws {
        let dir = try makeConfigTestDirectory(self)
        XCTAssertNil(try StateStore(path: dir + "/none.json").load())
    }

    func testRoundTripWithMode0600AndDirectory0700() throws {
        let dir = try makeConfigTestDirectory(self)
        let path = dir + "/nested/deeper/state.json"
        let store = StateStore(path: path)
        let state = AgentState(agentID: "a1", clusterID: "c1", clusterToken: "tok",
                               updatedAt: 1_768_473_000)
        try store.save(state)
        XCTAssertEqual(try store.load(), state)
        XCTAssertEqual(try mode(path), 0o600)
        XCTAssertEqual(try mode(dir + "/nested/deeper"), 0o700)
        XCTAssertEqual(try mode(dir + "/nested"), 0o700)

        let json = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(json.contains("\"agent_id\" : \"a1\""), json)
        XCTAssertTrue(json.contains("\"cluster_token\" : \"tok\""), json)
        XCTAssertTrue(json.contains("\"updated_at\" : \"2026-01-15T10:30:00Z\""), json)
    }

    func testSaveReplacesAtomicallyAndLeavesNoTempFile() throws {
        let dir = try makeConfigTestDirectory(self)
        let path = dir + "/state.json"
        // An existing file with loose permissions is replaced by a 0600 one.
        try "{\"agent_id\":\"old\",\"updated_at\":\"2026-01-01T00:00:00Z\"}".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        let inodeBefore = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int)
        let store = StateStore(path: path)
        XCTAssertEqual(try store.load()?.agentID, "old")

        for i in 0..<5 {
            try store.save(AgentState(agentID: "new", clusterID: "c\(i)", updatedAt: 1_700_000_000))
        }
        XCTAssertEqual(try store.load()?.clusterID, "c4")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["state.json"])
        XCTAssertEqual(try mode(path), 0o600)
        let inodeAfter = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int)
        XCTAssertNotEqual(inodeBefore, inodeAfter, "the file is replaced by rename, not rewritten in place")
    }

    func testBadStateFilesGiveClearErrors() throws {
        let dir = try makeConfigTestDirectory(self)
        let path = dir + "/state.json"
        let store = StateStore(path: path)
        let cases: [(String, StateError.Kind, String)] = [
            ("{\"agent_id\": \"a\", \"updated_at\": ", .unparseable, "not valid JSON"),
            ("garbage", .unparseable, "not valid JSON"),
            ("", .corrupt, "the file is empty"),
            ("{\"cluster_id\": \"c\", \"updated_at\": \"2026-01-01T00:00:00Z\"}", .corrupt, "missing \"agent_id\""),
            ("{\"agent_id\": 42, \"updated_at\": \"2026-01-01T00:00:00Z\"}", .corrupt, "agent_id: "),
            ("{\"agent_id\": \"\", \"updated_at\": \"2026-01-01T00:00:00Z\"}", .corrupt, "agent_id is empty"),
            ("{\"agent_id\": \"a\", \"updated_at\": \"yesterday\"}", .corrupt, "updated_at"),
        ]
        for (content, kind, expected) in cases {
            try content.write(toFile: path, atomically: false, encoding: .utf8)
            XCTAssertThrowsError(try store.load(), content) { error in
                guard let stateError = error as? StateError else { return XCTFail("\(error)") }
                XCTAssertEqual(stateError.kind, kind, content)
                XCTAssertTrue(stateError.reason.contains(expected), "\(content) -> \(stateError.reason)")
                XCTAssertTrue("\(error)".hasPrefix("state file \(path) is "), "\(error)")
            }
        }
    }

    /// A state written by hand or by an older agent, without `updated_at`, is the agent's
    /// identity all the same. Before, it was called corrupt and replaced by a new identity.
    func testMissingUpdatedAtIsNotCorruption() throws {
        let dir = try makeConfigTestDirectory(self)
        let store = StateStore(path: dir + "/state.json")
        try #"{"agent_id": "agent-7", "cluster_id": "cluster-7"}"#.write(toFile: store.path, atomically: false, encoding: .utf8)
        let (state, warnings) = try store.bootstrap(configuredAgentID: nil, now: 1_768_473_000)
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(state.agentID, "agent-7")
        XCTAssertEqual(state.clusterID, "cluster-7")
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.corruptCopyPath))
    }

    /// Valid JSON that is not a state may be replaced, but its bytes are kept as `.corrupt`.
    func testCorruptStateIsReplacedAndKeptAsACorruptCopy() throws {
        let dir = try makeConfigTestDirectory(self)
        let store = StateStore(path: dir + "/state.json")
        let corrupt = #"{"agent_id": 42, "cluster_id": "cluster-9"}"#
        try corrupt.write(toFile: store.path, atomically: false, encoding: .utf8)
        let (state, warnings) = try store.bootstrap(configuredAgentID: nil)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("kept as \(store.corruptCopyPath)"), warnings[0])
        XCTAssertTrue(RandomUUID.isValid(state.agentID))
        XCTAssertEqual(try store.load(), state)
        XCTAssertEqual(try String(contentsOfFile: store.corruptCopyPath, encoding: .utf8), corrupt)
    }

    /// A file that is not JSON may not be ours (a mistyped state.path) or may be a damaged
    /// identity: the start stops with an error that says what to do, and the file stays.
    func testStateThatIsNotJSONStopsTheStartAndIsLeftAlone() throws {
        let dir = try makeConfigTestDirectory(self)
        let store = StateStore(path: dir + "/state.json")
        try "# not a state file\n".write(toFile: store.path, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try store.bootstrap(configuredAgentID: nil)) { error in
            XCTAssertEqual((error as? StateError)?.kind, .unparseable, "\(error)")
            XCTAssertTrue("\(error)".contains("fix it, or remove it"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: store.path, encoding: .utf8), "# not a state file\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.corruptCopyPath))
    }

    /// A state file that cannot be read (here a symlink loop, which even root cannot open;
    /// ExecutableTests covers a permission error) stops the start and is not replaced.
    /// Before, it was treated as corrupt: a new identity, and the path overwritten.
    func testUnreadableStateStopsTheStartAndIsLeftAlone() throws {
        let dir = try makeConfigTestDirectory(self)
        let store = StateStore(path: dir + "/state.json")
        try FileManager.default.createSymbolicLink(atPath: store.path, withDestinationPath: "state.json")
        XCTAssertThrowsError(try store.bootstrap(configuredAgentID: nil)) { error in
            XCTAssertEqual((error as? StateError)?.kind, .unreadable, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("cannot read state file \(store.path): "), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: store.path), "state.json")
    }

    /// Only a regular file is a state file: a directory (or a FIFO, see StateFileStartupTests)
    /// is refused with what it is, and left alone.
    func testStatePathThatIsNotARegularFileIsRefused() throws {
        let dir = try makeConfigTestDirectory(self)
        let store = StateStore(path: dir + "/state.json")
        try FileManager.default.createDirectory(atPath: store.path, withIntermediateDirectories: false)
        XCTAssertThrowsError(try store.bootstrap(configuredAgentID: nil)) { error in
            XCTAssertEqual((error as? StateError)?.kind, .unreadable, "\(error)")
            XCTAssertTrue("\(error)".contains("it is a directory, not a regular file"), "\(error)")
        }
    }

    func testBootstrapPicksConfiguredThenSavedThenNewID() throws {
        let dir = try makeConfigTestDirectory(self)
        let store = StateStore(path: dir + "/state.json")
        let (fresh, w1) = try store.bootstrap(configuredAgentID: nil)
        XCTAssertEqual(w1, [])
        XCTAssertTrue(RandomUUID.isValid(fresh.agentID), fresh.agentID)
        XCTAssertEqual(try store.load()?.agentID, fresh.agentID, "a new ID is persisted")

        let (again, _) = try store.bootstrap(configuredAgentID: nil)
        XCTAssertEqual(again.agentID, fresh.agentID, "the saved ID is reused")

        var registered = again
        registered.clusterID = "cluster-1"
        try store.save(registered)
        let (configured, _) = try store.bootstrap(configuredAgentID: "agent-prod-east-001")
        XCTAssertEqual(configured.agentID, "agent-prod-east-001")
        XCTAssertEqual(configured.clusterID, "cluster-1")
        XCTAssertEqual(try store.load()?.agentID, "agent-prod-east-001")

    }

    func testUUIDv4Format() throws {
        var seen = Set<String>()
        for _ in 0..<200 {
            let id = try RandomUUID.v4()
            XCTAssertTrue(RandomUUID.isValid(id), id)
            XCTAssertEqual(id, id.lowercased())
            let chars = Array(id)
            XCTAssertEqual(chars[14], "4", "version nibble: \(id)")
            XCTAssertTrue("89ab".contains(chars[19]), "variant nibble: \(id)")
            seen.insert(id)
        }
        XCTAssertEqual(seen.count, 200)
        XCTAssertNotNil(UUID(uuidString: try RandomUUID.v4()), "Foundation agrees it is a UUID")
        XCTAssertFalse(RandomUUID.isValid("not-a-uuid"))
    }

    func testUnwritableLocationIsAClearError() throws {
        let dir = try makeConfigTestDirectory(self)
        try "x".write(toFile: dir + "/file", atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try StateStore(path: dir + "/file/state.json").save(AgentState(agentID: "a"))) { error in
            XCTAssertEqual("\(error)", "cannot write state file \(dir)/file/state.json: \(dir)/file is not a directory")
        }
    }
}
