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

    func testVersionStringNamesTheVersion() {
        XCTAssertTrue(AgentVersion.full.contains(AgentVersion.version))
    }
}
