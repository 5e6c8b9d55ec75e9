import Reactor
import XCTest

@testable import Agent

/// The Secret's shape and `state.backend`; the calls themselves run against the Kubernetes API
/// test server in Tests/e2e/test_state_secret.py.
final class StateSecretTests: XCTestCase {
    func testTheStateGoesIntoDataAndComesBackEqual() throws {
        let state = AgentState(agentID: "a-1", clusterID: "c-9", clusterToken: "rotated", updatedAt: 1_767_225_600)
        let secret = StateSecret.newSecret(state, namespace: "pipeops-system")
        let data = try XCTUnwrap(try JSONFields(secret).optionalObject("data"))
        XCTAssertEqual(try data.optionalString("cluster_id"), Base64.encode(Array("c-9".utf8)))
        XCTAssertEqual(try data.optionalString("updated_at"), Base64.encode(Array("2026-01-01T00:00:00Z".utf8)))
        XCTAssertEqual(try StateSecret.state(in: secret), state)
        // Not registered yet: no cluster_id or cluster_token keys at all.
        let fresh = AgentState(agentID: "a-2", updatedAt: 0)
        XCTAssertEqual(try StateSecret.state(in: StateSecret.newSecret(fresh, namespace: "ns")), fresh)
    }

    func testAnUpdateKeepsMetadataAndReplacesOnlyTheData() throws {
        let read = try JSONParser.parse(Array("""
            {"apiVersion":"v1","kind":"Secret","metadata":{"name":"pipeops-agent-state","resourceVersion":"42",
             "annotations":{"someone/else":"x"}},"type":"Opaque","data":{"agent_id":"b2xk","stale":"eA=="}}
            """.utf8))
        let updated = StateSecret.updated(read, with: AgentState(agentID: "new", updatedAt: 0))
        let fields = try JSONFields(updated)
        XCTAssertEqual(try fields.optionalObject("metadata")?.optionalString("resourceVersion"), "42")
        XCTAssertEqual(try fields.optionalObject("metadata")?.optionalObject("annotations")?.optionalString("someone/else"), "x")
        XCTAssertNil(try fields.optionalObject("data")?.optionalString("stale"))
        XCTAssertEqual(try StateSecret.state(in: updated).agentID, "new")
    }

    func testDataThatIsNotOursIsAShapeError() {
        let notBase64 = JSONValue.object(["data": .object(["agent_id": .string("%%%")])])
        XCTAssertThrowsError(try StateSecret.state(in: notBase64)) { XCTAssertTrue("\($0)".contains("data.agent_id: not base64"), "\($0)") }
        XCTAssertThrowsError(try StateSecret.state(in: .object(["data": .object([:])])))
    }

    func testStateBackendIsAChoiceOrNull() throws {
        XCTAssertNil(try loadConfigYAML("").0.state.backend)
        XCTAssertEqual(try loadConfigYAML("state:\n  backend: secret\n").0.state.backend, .secret)
        XCTAssertEqual(try loadConfigYAML("", environment: ["PIPEOPS_STATE_BACKEND": "file"]).0.state.backend, .file)
        XCTAssertEqual(configLoadError("state:\n  backend: etcd\n"),
                       "config.yaml:2: state.backend: expected one of file, secret or null, got \"etcd\"")
        // Automatic: the file without a Kubernetes client in cluster.
        XCTAssertEqual(StateBackend.choose(nil, kubernetes: nil).0, .file)
        XCTAssertEqual(StateBackend.choose(.secret, kubernetes: nil).0, .secret)
    }
}
