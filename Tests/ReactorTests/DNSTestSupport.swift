import Foundation
import Glibc
import XCTest
@testable import Reactor

/// Tests/Fixtures/dns/scripted_server.py (dnslib) on 127.0.0.1, with the records a test asks for
/// and a log of every query it received.
final class ScriptedDNSServer {
    let peer: PeerProcess
    let port: Int
    let logPath: String

    init(_ rules: [String]) throws {
        logPath = NSTemporaryDirectory() + "dns-queries-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/dns/scripted_server.py").standardized.path
        guard let python = Peers.require("python3") else { throw TestFailure("python3 is needed for the DNS test server") }
        peer = try PeerProcess(python, [script, "--log", logPath] + rules)
        guard let port = peer.waitForPort() else {
            let why = peer.stderr
            peer.stop()
            throw TestFailure("the DNS test server did not start: \(why)")
        }
        self.port = port
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Every query so far, as "A name udp" / "AAAA name tcp".
    var queries: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Queries for exactly `name` (over `transport` when given).
    func queries(for name: String, over transport: String? = nil) -> Int {
        queries.filter {
            let fields = $0.split(separator: " ")
            return fields.count == 3 && fields[1] == name && (transport == nil || fields[2] == transport!)
        }.count
    }

    func stop() {
        peer.stop()
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// A UDP socket on 127.0.0.1 that receives and never answers: a DNS server that has gone quiet.
/// Also the tripwire for lookups that must not reach DNS at all.
final class SilentUDPServer {
    let fd: Int32
    let port: Int

    init() throws {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard s >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, let local = Socket.localAddress(fd: s) else { close(s); throw TestFailure("bind: errno \(errno)") }
        fd = s
        port = local.port
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Datagrams received since the last call.
    func drain() -> Int {
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 1500)
        while recv(fd, &buffer, buffer.count, 0) >= 0 { count += 1 }
        return count
    }

    deinit { close(fd) }
}

/// Settings that never reach the machine's DNS: our own resolv.conf (no search list, ndots 1)
/// and only the given loopback servers.
func loopbackDNSSettings(servers: [String], resolvConf: String = "options ndots:1\n") throws -> ResolverSettings {
    let path = NSTemporaryDirectory() + "resolv-\(UUID().uuidString).conf"
    try resolvConf.write(toFile: path, atomically: true, encoding: .utf8)
    var settings = ResolverSettings()
    settings.resolvConfPath = path
    settings.servers = servers
    settings.hostsPath = "/nonexistent"
    return settings
}

/// Threads in this process now (/proc/self/task).
func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
}
