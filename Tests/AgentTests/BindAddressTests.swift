import Glibc
import XCTest
@testable import Agent
@testable import Reactor

/// `agent.bind_address`: where the agent's HTTP server listens (issue 15, defect 7).
final class BindAddressTests: XCTestCase {
    func testDefaultIsEveryInterfaceAndBadValuesNameTheKey() throws {
        XCTAssertEqual(try loadConfigYAML("").0.agent.bindAddress, "0.0.0.0")
        XCTAssertEqual(try loadConfigYAML("agent:\n  bind_address: \"127.0.0.1\"\n").0.agent.bindAddress, "127.0.0.1")
        XCTAssertEqual(try loadConfigYAML("", overrides: ["agent.bind_address": "::1"]).0.agent.bindAddress, "::1")
        XCTAssertThrowsError(try loadConfigYAML("agent:\n  port: 8080\n  bind_address: localhost\n")) { error in
            XCTAssertTrue("\(error)".hasPrefix("config.yaml:3: agent.bind_address: expected a numeric IPv4 or IPv6 address"), "\(error)")
        }
    }

    /// A VM user sets 127.0.0.1: the server listens there only. Before, it was always 0.0.0.0.
    func testTheAgentsServerListensOnTheConfiguredAddress() throws {
        let loop = try EventLoop()
        var config = AgentConfig.defaults(environment: [:])
        config.pipeops.apiURL = ""
        config.tunnel.enabled = false
        config.agent.port = 0
        config.agent.bindAddress = "127.0.0.1"
        config.state.path = "/tmp/pipeops-agent-bind-\(getpid())/state.json"
        let agent = try Agent(loop: loop, config: config, environment: [:])
        agent.start()
        let address = try XCTUnwrap(agent.server?.address)
        XCTAssertTrue("\(address)".hasPrefix("127.0.0.1:"), "\(address)")
        var done = false
        agent.shutdown(signal: 15) { done = true }
        XCTAssertTrue(loop.run(until: { done }, timeout: .seconds(5)))
    }
}
