import Foundation
import XCTest
@testable import Agent
@testable import Reactor

/// How the agent finds its cluster: kubeconfig forms, the automatic choice, in cluster.
final class KubeconfigTests: XCTestCase {
    var dir = ""
    var pki: KubePKI!

    override func setUpWithError() throws {
        dir = makeTempDir()
        pki = try KubePKI.make()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
        pki?.remove()
    }

    private func write(_ name: String, _ text: String) throws -> String {
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func config(cluster: String, user: String, name: String = "config") throws -> String {
        try write(name, """
        apiVersion: v1
        kind: Config
        current-context: ctx
        contexts:
        - name: ctx
          context: {cluster: c, user: u, namespace: apps}
        clusters:
        - name: c
          cluster:
        \(cluster)
        users:
        - name: u
          user:
        \(user)
        """)
    }

    private func resolve(_ path: String?, environment: [String: String] = [:], inCluster: Bool? = nil) -> KubernetesAccess.Plan {
        var s = KubernetesSettings()
        s.kubeconfig = path
        s.inCluster = inCluster
        s.tokenFile = dir + "/no-such-token"
        return KubernetesAccess.resolve(s, environment: environment)
    }

    private func use(_ plan: KubernetesAccess.Plan, file: StaticString = #filePath, line: UInt = #line) throws -> KubernetesAccess {
        guard case .use(let a) = plan else { throw KubeTestError("expected a usable plan, got \(plan)") }
        return a
    }

    func testTokenAndCAFile() throws {
        let path = try config(cluster: "    server: https://127.0.0.1:6443/prefix/\n    certificate-authority: \(pki.ca)",
                              user: "    token: abc.def")
        let a = try use(resolve(path))
        XCTAssertEqual(a.server, HTTPOrigin(useTLS: true, host: "127.0.0.1", port: 6443))
        XCTAssertEqual(a.basePath, "/prefix")
        XCTAssertEqual(a.credential, .token("abc.def"))
        XCTAssertEqual(a.certificateAuthority, .file(pki.ca))
        XCTAssertEqual(a.namespace, "apps")
        XCTAssertEqual(a.source, .kubeconfig(file: path, context: "ctx"))
        XCTAssertNoThrow(try KubernetesConnector.tlsContext(a))
    }

    func testClientCertificateFilesRelativeToTheKubeconfig() throws {
        try FileManager.default.copyItem(atPath: pki.clientCert, toPath: dir + "/client.pem")
        try FileManager.default.copyItem(atPath: pki.clientKey, toPath: dir + "/client.key")
        let path = try config(cluster: "    server: https://localhost:6443\n    certificate-authority-data: \(try base64File(pki.ca))",
                              user: "    client-certificate: client.pem\n    client-key: client.key")
        let a = try use(resolve(path))
        XCTAssertEqual(a.clientCertificate, .file(dir + "/client.pem"))
        XCTAssertEqual(a.clientKey, .file(dir + "/client.key"))
        XCTAssertEqual(a.certificateAuthority, .data(Array(try Data(contentsOf: URL(fileURLWithPath: pki.ca)))))
        XCTAssertEqual(a.credential, .none)
        XCTAssertNoThrow(try KubernetesConnector.tlsContext(a))
    }

    func testClientCertificateDataBuildsATLSContextInMemory() throws {
        let path = try config(cluster: "    server: https://localhost:6443\n    certificate-authority-data: \(try base64File(pki.ca))",
                              user: "    client-certificate-data: \(try base64File(pki.clientCert))\n    client-key-data: \(try base64File(pki.clientKey))")
        let a = try use(resolve(path))
        guard case .data = a.clientCertificate, case .data = a.clientKey else { return XCTFail("expected inline data") }
        XCTAssertNoThrow(try KubernetesConnector.tlsContext(a))
        // A key that does not belong to the certificate is refused with words, not an fd path.
        var wrong = a
        wrong.clientKey = .data(Array(try Data(contentsOf: URL(fileURLWithPath: pki.serverKey))))
        XCTAssertThrowsError(try KubernetesConnector.tlsContext(wrong)) { error in
            XCTAssertTrue("\(error)".contains("inline client"), "\(error)")
            XCTAssertFalse("\(error)".contains("/proc/self/fd"), "\(error)")
        }
    }

    func testInsecureSkipVerifyAndServerName() throws {
        let path = try config(cluster: "    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true\n    tls-server-name: kubernetes.default",
                              user: "    tokenFile: token.txt")
        let a = try use(resolve(path))
        XCTAssertTrue(a.insecureSkipVerify)
        XCTAssertEqual(a.tlsServerName, "kubernetes.default")
        XCTAssertEqual(a.credential, .tokenFile(dir + "/token.txt"))
    }

    func testAnExecPluginIsAClearErrorNamingIt() throws {
        let path = try config(cluster: "    server: https://127.0.0.1:6443",
                              user: "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      args: [eks, get-token]")
        guard case .failed(let why) = resolve(path) else { return XCTFail("an exec user must not be usable") }
        XCTAssertTrue(why.contains("exec credential plugin"), why)
        XCTAssertTrue(why.contains("\"aws\""), why)
        XCTAssertTrue(why.contains(path), why)
        let provider = try config(cluster: "    server: https://127.0.0.1:6443", user: "    auth-provider:\n      name: gcp", name: "p")
        guard case .failed(let why2) = resolve(provider) else { return XCTFail("an auth-provider user must not be usable") }
        XCTAssertTrue(why2.contains("\"gcp\" auth-provider"), why2)
    }

    func testBrokenKubeconfigsSayWhatIsWrong() throws {
        let noContext = try write("nc", "apiVersion: v1\nclusters: []\n")
        guard case .failed(let a) = resolve(noContext) else { return XCTFail() }
        XCTAssertTrue(a.contains("no current-context"), a)
        let missingCA = try config(cluster: "    server: https://127.0.0.1:6443\n    certificate-authority: nope.pem", user: "    token: t", name: "m")
        guard case .failed(let b) = resolve(missingCA) else { return XCTFail() }
        XCTAssertTrue(b.contains("nope.pem does not exist"), b)
        guard case .failed(let c) = resolve(dir + "/absent") else { return XCTFail() }
        XCTAssertTrue(c.contains("no such file"), c)
    }

    func testKUBECONFIGListMergesFirstWins() throws {
        let users = try write("users", "users:\n- name: u\n  user:\n    token: from-second\n")
        let main = try write("main", """
        current-context: ctx
        contexts:
        - {name: ctx, context: {cluster: c, user: u}}
        clusters:
        - {name: c, cluster: {server: "https://127.0.0.1:1234"}}
        """)
        let a = try use(resolve(nil, environment: ["KUBECONFIG": "\(dir)/missing:\(main):\(users)"]))
        XCTAssertEqual(a.credential, .token("from-second"))
        XCTAssertEqual(a.server.port, 1234)
    }

    func testAutomaticChoice() throws {
        // Nothing at all: off, not failed, and it says where it looked.
        guard case .off(let why) = resolve(nil, environment: ["HOME": dir]) else { return XCTFail() }
        XCTAssertTrue(why.contains("no kubeconfig"), why)
        // ~/.kube/config is found.
        try FileManager.default.createDirectory(atPath: dir + "/.kube", withIntermediateDirectories: true)
        _ = try config(cluster: "    server: https://127.0.0.1:6443", user: "    token: t", name: ".kube/config")
        XCTAssertNoThrow(try use(resolve(nil, environment: ["HOME": dir])))
        // The service account's token file makes it in-cluster.
        var s = KubernetesSettings()
        s.tokenFile = try write("token", "sa-token\n")
        s.caFile = pki.ca
        _ = try write("namespace", "pipeops-system")
        let plan = KubernetesAccess.resolve(s, environment: ["HOME": dir, "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "8443"])
        let a = try use(plan)
        XCTAssertEqual(a.source, .inCluster)
        XCTAssertEqual(a.server, HTTPOrigin(useTLS: true, host: "127.0.0.1", port: 8443))
        XCTAssertEqual(a.credential, .tokenFile(s.tokenFile))
        XCTAssertEqual(a.namespace, "pipeops-system")
        // Asked for in cluster without the environment: failed, with the cause.
        guard case .failed(let w) = KubernetesAccess.resolve(s, environment: [:]) else { return XCTFail() }
        XCTAssertTrue(w.contains("KUBERNETES_SERVICE_HOST"), w)
    }
}
