import Foundation
import Glibc
import XCTest
@testable import Agent
@testable import Reactor

let fixturesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures").standardized.path

struct KubeTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A throwaway PKI from Tests/Fixtures/tls/make-pki.sh (CA, server leaf for localhost and
/// 127.0.0.1, client leaf, an unrelated CA).
struct KubePKI {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var otherCA: String { dir + "/other-ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }

    static func make() throws -> KubePKI {
        let dir = NSTemporaryDirectory() + "pipeops-k8s-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let (status, out) = try runTool("/bin/sh", [fixturesDir + "/tls/make-pki.sh", dir])
        guard status == 0 else { throw KubeTestError("make-pki.sh failed: \(out)") }
        return KubePKI(dir: dir)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

/// Runs a tool to the end; returns its status and stdout+stderr.
@discardableResult
func runTool(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Tests/Fixtures/kubernetes/apiserver.py on a free port, over TLS with the PKI's server leaf.
final class TestAPIServer {
    let pki: KubePKI
    let process = Process()
    let port: Int
    let token: String
    var url: String { "https://127.0.0.1:\(port)" }

    init(pki: KubePKI, token: String = "test-k8s-token", tokenFile: String? = nil, extra: [String] = []) throws {
        self.pki = pki
        self.token = token
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var args = ["python3", fixturesDir + "/kubernetes/apiserver.py", "--cert", pki.serverCert, "--key", pki.serverKey,
                    "--client-ca", pki.ca, "--bookmark-interval", "1"]
        if let tokenFile { args += ["--token-file", tokenFile] } else { args += ["--token", token] }
        process.arguments = args + extra
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = out.fileHandleForReading.readLine()
        guard let line, let data = line.data(using: .utf8),
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any], let port = json["port"] as? Int else {
            process.terminate()
            throw KubeTestError("the test API server did not start (\(line ?? "no output"))")
        }
        self.port = port
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }

    /// POST /_test/<action> with a JSON body; the answer as JSON.
    @discardableResult
    func control(_ action: String, _ body: [String: Any] = [:], method: String = "POST") throws -> Any {
        let data = try JSONSerialization.data(withJSONObject: body)
        let (status, out) = try runTool("/usr/bin/curl", ["-sS", "--cacert", pki.ca, "-X", method, "-H", "Content-Type: application/json",
                                                          "--data-binary", String(decoding: data, as: UTF8.self), "\(url)/_test/\(action)"])
        guard status == 0 else { throw KubeTestError("control \(action): \(out)") }
        return try JSONSerialization.jsonObject(with: Data(out.utf8))
    }

    func requests(since: Int = 0) throws -> [[String: Any]] {
        let (status, out) = try runTool("/usr/bin/curl", ["-sS", "--cacert", pki.ca, "\(url)/_test/requests?since=\(since)"])
        guard status == 0 else { throw KubeTestError("requests: \(out)") }
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
    }

    /// A kubeconfig for this server with the given user stanza (YAML lines under `user:`).
    func kubeconfig(in dir: String, name: String = "kubeconfig", cluster: String? = nil, user: String? = nil) throws -> String {
        let path = dir + "/" + name
        let clusterYAML = cluster ?? "    server: \(url)\n    certificate-authority: \(pki.ca)\n"
        let userYAML = user ?? "    token: \(token)\n"
        let text = "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n\(clusterYAML)"
            + "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\nusers:\n- name: test\n  user:\n\(userYAML)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// kubectl against this server with the token; stdout (and stderr) text.
    func kubectl(_ args: [String]) throws -> String {
        let (status, out) = try runTool("/usr/bin/env", ["kubectl", "--server", url, "--certificate-authority", pki.ca,
                                                         "--token", token] + args)
        guard status == 0 else { throw KubeTestError("kubectl \(args.joined(separator: " ")): \(out)") }
        return out
    }
}

extension FileHandle {
    /// One line, read a byte at a time (the server prints one short line when it listens).
    func readLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            let d = readData(ofLength: 1)
            if d.isEmpty { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if d.first == 0x0A { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(contentsOf: d)
        }
    }
}

func makeTempDir() -> String {
    let dir = NSTemporaryDirectory() + "pipeops-k8s-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func base64File(_ path: String) throws -> String {
    try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString()
}
