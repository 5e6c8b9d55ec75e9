import Foundation
import Glibc
import XCTest
@testable import Reactor

/// Paths of the fixtures next to the tests.
enum SSHFixtures {
    static let dir: String = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.deletingLastPathComponent().appendingPathComponent("Fixtures/ssh").path
    }()
    static let testUser = "sshtest"
    static let testPassword = "sshtest-password"
}

/// Starts `path` with `args` (posix_spawn; Foundation's Process can hang in waitUntilExit while
/// another child runs). Output goes to `outputPath` when given.
func spawnProcess(_ path: String, _ args: [String], outputPath: String? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let out = outputPath {
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
    guard rc == 0 else { throw SSHError.closed("spawn \(path) failed: errno \(rc)") }
    return pid
}

func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xff
}

/// Runs a command to completion; returns (exit status, combined output).
@discardableResult
func runCommand(_ path: String, _ args: [String]) throws -> (Int32, String) {
    let out = NSTemporaryDirectory() + "cmd-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
    defer { unlink(out) }
    let pid = try spawnProcess(path, args, outputPath: out)
    let status = waitForExit(pid)
    return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
}

/// Host keys and a client key, generated once per test process.
final class SSHTestKeys: Sendable {
    static let shared: SSHTestKeys? = try? SSHTestKeys()
    let dir: String

    private init() throws {
        dir = NSTemporaryDirectory() + "ssh-test-keys-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (type, name, bits) in [("ed25519", "host_ed25519", ""), ("ecdsa", "host_ecdsa", "256"), ("rsa", "host_rsa", "2048"),
                                   ("ed25519", "client_ed25519", ""), ("ed25519", "other_ed25519", "")] {
            var args = ["-q", "-t", type, "-N", "", "-f", "\(dir)/\(name)", "-C", name]
            if !bits.isEmpty { args += ["-b", bits] }
            let (status, out) = try runCommand("/usr/bin/ssh-keygen", args)
            guard status == 0 else { throw SSHError.closed("ssh-keygen failed: \(out)") }
        }
        try FileManager.default.copyItem(atPath: "\(dir)/client_ed25519.pub", toPath: "\(dir)/authorized_keys")
        let (status, out) = try runCommand("/bin/sh", ["\(SSHFixtures.dir)/make-test-user.sh", SSHFixtures.testUser, SSHFixtures.testPassword])
        guard status == 0 else { throw SSHError.closed("make-test-user.sh failed: \(out)") }
    }

    func clientKey() throws -> SSHEd25519PrivateKey {
        try SSHEd25519PrivateKey(openSSHText: String(contentsOfFile: "\(dir)/client_ed25519", encoding: .utf8))
    }

    /// `ssh-keygen -l -E sha256` of a host key: the OpenSSH `SHA256:...` form.
    func openSSHFingerprint(_ name: String) throws -> String {
        let (_, out) = try runCommand("/usr/bin/ssh-keygen", ["-l", "-E", "sha256", "-f", "\(dir)/\(name).pub"])
        return String(out.split(separator: " ")[1])
    }
}

/// OpenSSH's sshd on a free loopback port, started for one test and stopped by PID.
final class SSHDPeer {
    let port: Int
    let dir: String
    private var pid: pid_t
    private let logPath: String

    init(extraConfig: String = "") throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") else {
            throw SSHError.closed("/usr/sbin/sshd is missing: apt-get install -y openssh-server")
        }
        guard let keys = SSHTestKeys.shared else { throw SSHError.closed("could not generate test keys with ssh-keygen") }
        port = try freeLocalPort()
        dir = NSTemporaryDirectory() + "sshd-\(getpid())-\(port)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        var config = try String(contentsOfFile: "\(SSHFixtures.dir)/sshd_config.template", encoding: .utf8)
        config = config.replacingOccurrences(of: "@PORT@", with: "\(port)")
        config = config.replacingOccurrences(of: "@PIDFILE@", with: "\(dir)/sshd.pid")
        config = config.replacingOccurrences(of: "@AUTHKEYS@", with: "\(keys.dir)/authorized_keys")
        for key in ["host_ed25519", "host_ecdsa", "host_rsa"] { config += "HostKey \(keys.dir)/\(key)\n" }
        config += "LogLevel VERBOSE\n" + extraConfig + "\n"
        try config.write(toFile: "\(dir)/sshd_config", atomically: true, encoding: .utf8)
        logPath = "\(dir)/sshd.log"
        pid = try spawnProcess("/usr/sbin/sshd", ["-D", "-e", "-f", "\(dir)/sshd_config", "-E", logPath])
        // Ready when the port accepts.
        for _ in 0..<100 {
            if canConnect(port) { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { pid = 0; break }
            usleep(50_000)
        }
        throw SSHError.closed("sshd did not start: \(log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var address: SocketAddress { (try? SocketAddress(ip: "127.0.0.1", port: port)) ?? { preconditionFailure("bad test address") }() }

    func stop() {
        if pid > 0 {
            kill(pid, SIGTERM)
            _ = waitForExit(pid)
            pid = 0
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }
}

func canConnect(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { Glibc.close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    return rc == 0
}

/// Records what an SSHConnection reports.
final class RecordingSSHDelegate: SSHConnectionDelegate {
    var authenticated = false
    var disconnected = false
    var error: SSHError?
    var warnings: [String] = []
    var hostKey: SSHHostKey?
    var onAuthenticated: ((SSHConnection) -> Void)?
    var onChannelOpen: ((SSHChannelOpenRequest) -> Void)?
    var globalRequests: [(String, Bool, [UInt8])] = []

    func sshConnectionDidAuthenticate(_ connection: SSHConnection) {
        authenticated = true
        onAuthenticated?(connection)
    }
    func sshConnection(_ connection: SSHConnection, didDisconnectWith error: SSHError?) {
        disconnected = true
        self.error = error
    }
    func sshConnection(_ connection: SSHConnection, warning: String) { warnings.append(warning) }
    func sshConnection(_ connection: SSHConnection, didVerifyHostKey key: SSHHostKey) { hostKey = key }
    func sshConnection(_ connection: SSHConnection, channelOpen request: SSHChannelOpenRequest) {
        if let h = onChannelOpen { h(request) } else { request.reject(reason: 1, text: "not in this test") }
    }
    func sshConnection(_ connection: SSHConnection, globalRequest name: String, wantReply: Bool, data: [UInt8]) -> SSHGlobalReply? {
        globalRequests.append((name, wantReply, data))
        return nil
    }
}

/// Connects to `port` and turns the loop until authenticated or disconnected.
func sshConnect(loop: EventLoop, port: Int, config: SSHClientConfig, delegate: RecordingSSHDelegate,
                file: StaticString = #filePath, line: UInt = #line) throws -> SSHConnection {
    let conn = try SSHConnection.connect(loop: loop, to: SocketAddress(ip: "127.0.0.1", port: port), config: config, delegate: delegate)
    let done = loop.run(until: { delegate.authenticated || delegate.disconnected }, timeout: .seconds(20))
    XCTAssertTrue(done, "ssh handshake did not finish", file: file, line: line)
    return conn
}

func passwordConfig(_ algorithms: SSHAlgorithms = SSHAlgorithms(), fingerprint: String = "") -> SSHClientConfig {
    var c = SSHClientConfig(credentials: SSHCredentials(user: SSHFixtures.testUser, password: SSHFixtures.testPassword))
    c.transport.algorithms = algorithms
    c.transport.expectedFingerprint = fingerprint
    return c
}
