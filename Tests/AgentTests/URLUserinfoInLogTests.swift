import Foundation
import XCTest

/// A password in `pipeops.api_url` (`http://user:pw@host`) never reaches the log (issue 15,
/// defect 6): before, the "agent starting" and "registering" lines printed it.
final class URLUserinfoInLogTests: XCTestCase {
    func testAPIURLPasswordIsMaskedInTheLog() throws {
        let dir = NSTemporaryDirectory() + "url-userinfo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A loopback port nobody listens on: registration fails at once and is retried.
        let port = try closedLoopbackPort()
        try "pipeops:\n  api_url: \"http://admin:hunter2-in-url@127.0.0.1:\(port)/base\"\n  token: t\ntunnel:\n  enabled: false\n"
            .appending("state:\n  path: \(dir)/state.json\nagent:\n  port: 0\n")
            .write(toFile: dir + "/agent.yaml", atomically: true, encoding: .utf8)
        let agent = try AgentProcess(["--config", dir + "/agent.yaml", "--log-level", "debug", "--log-format", "json"])
        XCTAssertTrue(agent.waitForLog("registering with the control plane"), agent.stderr)
        XCTAssertTrue(agent.stop())
        let log = agent.stderr
        XCTAssertFalse(log.contains("hunter2-in-url"), log)
        let starting = log.split(separator: "\n").first { $0.contains("\"msg\":\"agent starting\"") }.map(String.init) ?? ""
        XCTAssertTrue(starting.contains(#""api_url":"http://***@127.0.0.1:\#(port)/base""#), starting)
    }

    /// A port on 127.0.0.1 with no listener (bound, read back, released).
    private func closedLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "bind failed"]) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
