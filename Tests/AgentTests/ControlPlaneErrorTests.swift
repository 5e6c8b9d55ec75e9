import Foundation
import Logging
import XCTest
@testable import Agent
@testable import Reactor

/// The control-plane client's failures are typed `ControlPlaneError`s, against the
/// control-plane test double (Tests/Fixtures/controlplane) on 127.0.0.1.
final class ControlPlaneErrorTests: XCTestCase {
    /// Tests/Fixtures/controlplane/server.py on free ports; its first stdout line names them.
    final class Double {
        let process = Process()
        let apiURL: String

        init() throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", fixturesDir + "/controlplane/server.py", "--api-port", "0", "--tunnel-port", "0",
                                 "--host", "127.0.0.1"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let line = out.fileHandleForReading.readLine()
            guard let line, let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let url = json["api_url"] as? String else {
                process.terminate()
                throw KubeTestError("the control-plane double did not start (\(line ?? "no output"))")
            }
            apiURL = url
        }

        /// Queues scripted answers (`POST /_test/fail`).
        func fail(_ body: [String: Any]) throws {
            let data = try JSONSerialization.data(withJSONObject: body)
            let (status, out) = try runTool("/usr/bin/curl", ["-sS", "-f", "-X", "POST", "-H", "Content-Type: application/json",
                                                              "--data-binary", String(decoding: data, as: UTF8.self), apiURL + "/_test/fail"])
            guard status == 0 else { throw KubeTestError("/_test/fail: \(out)") }
        }

        func stop() {
            if process.isRunning { process.terminate(); process.waitUntilExit() }
        }
    }

    private func client(_ loop: EventLoop, apiURL: String) -> ControlPlaneClient {
        var config = AgentConfig()
        config.pipeops.apiURL = apiURL
        config.pipeops.token = "test-token"
        config.tunnel.enabled = false
        let transport = HTTPControlPlaneTransport(client: HTTPClient(loop: loop, connector: .tcp(loop: loop)), baseURL: apiURL)
        return ControlPlaneClient(loop: loop, config: config, state: AgentState(agentID: "agent-errors-test"), persist: { _ in },
                                  transport: transport, environment: [:], logger: Logger(label: "test"))
    }

    func testHTTP500IsStatusWithTheBodysMessageThenRegistrationRecovers() throws {
        let double = try Double()
        defer { double.stop() }
        try double.fail(["endpoint": "register", "status": 500, "body": ["message": "database is down"]])
        let loop = try EventLoop()
        let cp = client(loop, apiURL: double.apiURL)
        cp.start()
        defer { cp.stop() }
        XCTAssertTrue(loop.run(until: { cp.lastRegistrationFailure != nil }, timeout: .seconds(15)))
        XCTAssertEqual(cp.lastRegistrationFailure, .status(500, message: "database is down", call: "register"))
        XCTAssertEqual(cp.lastRegistrationError, "register: HTTP 500: database is down")
        // The retry (after the first backoff step) is answered normally.
        XCTAssertTrue(loop.run(until: { cp.isRegistered }, timeout: .seconds(15)), "\(String(describing: cp.lastRegistrationFailure))")
        XCTAssertNil(cp.lastRegistrationFailure)
    }

    func testTheDoublesOwnErrorFieldIsTheMessage() throws {
        let double = try Double()
        defer { double.stop() }
        try double.fail(["endpoint": "register", "status": 503])   // the double answers {"error": "scripted failure", …}
        let loop = try EventLoop()
        let cp = client(loop, apiURL: double.apiURL)
        cp.start()
        defer { cp.stop() }
        XCTAssertTrue(loop.run(until: { cp.lastRegistrationFailure != nil }, timeout: .seconds(15)))
        XCTAssertEqual(cp.lastRegistrationFailure, .status(503, message: "scripted failure", call: "register"))
    }

    /// No answer at all: the HTTP error, and under it the connect error, are the causes.
    func testUnreachableControlPlaneIsHTTPWithTheConnectErrorAsCause() throws {
        let loop = try EventLoop()
        let probe = try TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, _ in close(fd) }
        let port = probe.port
        probe.close()
        let cp = client(loop, apiURL: "http://127.0.0.1:\(port)")
        cp.start()
        defer { cp.stop() }
        XCTAssertTrue(loop.run(until: { cp.lastRegistrationFailure != nil }, timeout: .seconds(15)))
        let failure = try XCTUnwrap(cp.lastRegistrationFailure)
        XCTAssertEqual(failure, .http(call: "register", .connect(.refused(target: "127.0.0.1:\(port)"))))
        XCTAssertEqual(ErrorChain.links(failure), [
            ErrorLink(layer: "control_plane", message: "register"),
            ErrorLink(layer: "connect", message: "connect to 127.0.0.1:\(port): ECONNREFUSED (Connection refused)"),
        ])
    }

    func testBodyMessageFallsBackToThePrintableStartOfTheBody() {
        XCTAssertEqual(ControlPlaneError.bodyMessage(Array(#"{"message":"quota exceeded","error":"x"}"#.utf8)), "quota exceeded")
        XCTAssertEqual(ControlPlaneError.bodyMessage(Array("<html>bad\ngateway</html>".utf8)), "<html>bad gateway</html>")
        XCTAssertEqual(ControlPlaneError.bodyMessage([]), "")
    }
}
