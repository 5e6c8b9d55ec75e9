import XCTest
@testable import Agent
@testable import Reactor

/// `tunnel.max_channels`, `tunnel.max_pending_dials` and each forward's `dial_timeout`.
final class TunnelLimitsConfigTests: XCTestCase {
    func testDefaults() throws {
        let (c, _) = try loadConfigYAML("")
        XCTAssertEqual(c.tunnel.maxChannels, 1024)
        XCTAssertEqual(c.tunnel.maxPendingDials, 64)
        XCTAssertTrue(c.tunnel.forwards.allSatisfy { $0.dialTimeout == .seconds(10) })
        XCTAssertEqual(TunnelLimits(c.tunnel), TunnelLimits())
    }

    func testValuesFromTheFileAndTheCommandLine() throws {
        let (c, _) = try loadConfigYAML("""
            tunnel:
              max_channels: 5
              forwards:
                - { name: "api", local_addr: "127.0.0.1:6443", dial_timeout: 2s }
                - { name: "web", local_addr: "127.0.0.1:8080" }
            """, overrides: ["tunnel.max_pending_dials": "3"])
        XCTAssertEqual(TunnelLimits(c.tunnel).maxChannels, 5)
        XCTAssertEqual(TunnelLimits(c.tunnel).maxPendingDials, 3)
        XCTAssertEqual(c.tunnel.forwards.map(\.dialTimeout), [.seconds(2), .seconds(10)])
        // config print shows each forward's timeout, and what it prints reads back the same.
        let printed = ConfigPrinter.render(c)
        XCTAssertTrue(printed.contains("      local_addr: \"127.0.0.1:6443\"\n      remote_bind: \"127.0.0.1\"\n"
                                       + "      remote_port: 0\n      dial_timeout: \"2s\"\n"), printed)
        XCTAssertEqual(try loadConfigYAML(printed).0.tunnel, c.tunnel)
    }

    func testBadValuesNameTheKeyAndLine() throws {
        XCTAssertThrowsError(try loadConfigYAML("tunnel:\n  max_channels: 0\n")) { error in
            XCTAssertTrue("\(error)".hasPrefix("config.yaml:2: tunnel.max_channels: expected a channel count 1-1000000"), "\(error)")
        }
        XCTAssertThrowsError(try loadConfigYAML("tunnel:\n  forwards:\n    - name: api\n      local_addr: \"h:1\"\n      dial_timeout: 0s\n")) { error in
            XCTAssertTrue("\(error)".hasPrefix("config.yaml:5: tunnel.forwards[0].dial_timeout: expected a duration above zero"), "\(error)")
        }
    }
}
