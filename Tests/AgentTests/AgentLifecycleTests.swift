import Glibc
import XCTest
@testable import Agent
@testable import Reactor

final class AgentLifecycleTests: XCTestCase {
    func testShutdownCompletesOnceEvenIfCalledTwice() throws {
        let loop = try EventLoop()
        var config = AgentConfig.defaults(environment: [:])
        config.pipeops.apiURL = ""
        config.state.path = "/tmp/pipeops-agent-test-\(getpid())/state.json"
        let agent = try Agent(loop: loop, config: config, environment: [:])
        var done = 0
        agent.shutdown(signal: 15) { done += 1 }
        agent.shutdown(signal: 15) { done += 1 }
        XCTAssertTrue(loop.run(until: { done == 1 }, timeout: .seconds(5)))
        loop.run(until: { false }, timeout: .milliseconds(900))
        XCTAssertEqual(done, 1)
    }

    /// An SSH tunnel that cannot start (here a server address with a bad port) is not ready.
    func testAnSSHTunnelThatCannotStartIsReportedOnReady() throws {
        let loop = try EventLoop()
        var config = AgentConfig.defaults(environment: [:])
        config.pipeops.apiURL = ""
        config.state.path = "/tmp/pipeops-agent-test-ssh-\(getpid())/state.json"
        config.tunnel.enabled = true
        config.tunnel.mode = .ssh
        config.tunnel.ssh.server = "127.0.0.1:notaport"
        let agent = try Agent(loop: loop, config: config, environment: [:])
        agent.start()
        let tunnel = try XCTUnwrap(agent.status().checks["tunnel"])
        XCTAssertFalse(tunnel.ok)
        XCTAssertTrue(tunnel.detail.hasPrefix("not started: "), tunnel.detail)
        var done = false
        agent.shutdown(signal: 15) { done = true }
        XCTAssertTrue(loop.run(until: { done }, timeout: .seconds(5)))
    }

    func testVersionStringNamesTheVersion() {
        XCTAssertTrue(AgentVersion.full.contains(AgentVersion.version))
    }
}
