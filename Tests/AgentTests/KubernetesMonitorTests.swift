import Foundation
import Logging
import XCTest
@testable import Agent
@testable import Reactor

/// The Kubernetes client against the test API server (Tests/Fixtures/kubernetes) over HTTPS,
/// compared with what kubectl says about the same server.
final class KubernetesMonitorTests: XCTestCase {
    var pki: KubePKI!
    var server: TestAPIServer!
    var dir = ""
    var loop: EventLoop!
    var resolver: Resolver!

    override func setUpWithError() throws {
        pki = try KubePKI.make()
        dir = makeTempDir()
        loop = try EventLoop()
        resolver = try Resolver(loop: loop)
    }

    override func tearDown() {
        server?.stop()
        pki?.remove()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func startServer(tokenFile: String? = nil, seedNodes: Int = 2, seedPods: Int = 5) throws {
        server = try TestAPIServer(pki: pki, tokenFile: tokenFile)
        if seedNodes + seedPods > 0 {
            try server.control("seed", ["nodes": seedNodes, "pods": seedPods, "namespaces": ["default", "kube-system"]])
        }
    }

    private func monitor(kubeconfig: String, namespaces: [String] = []) -> KubernetesMonitor {
        var settings = KubernetesSettings()
        settings.kubeconfig = kubeconfig
        settings.watchNamespaces = namespaces
        var options = KubernetesMonitor.Options()
        options.watch.backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
        options.watch.pageSize = 2
        options.connectTimeout = .seconds(3)
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return KubernetesMonitor(loop: loop, settings: settings, environment: [:], resolver: resolver,
                                 proxies: .none, logger: logger, options: options)
    }

    private func run(until condition: () -> Bool, timeout: Int64 = 20, _ what: String) {
        XCTAssertTrue(loop.run(until: condition, timeout: .seconds(timeout)), "timed out waiting for \(what)")
    }

    /// What kubectl sees: node count and pods by phase.
    private func kubectlPicture() throws -> (nodes: Int, pods: [String: Int]) {
        let text = try server.kubectl(["get", "nodes,pods", "-A", "-o", "json"])
        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let items = json?["items"] as? [[String: Any]] ?? []
        var pods: [String: Int] = [:]
        var nodes = 0
        for item in items {
            if item["kind"] as? String == "Node" { nodes += 1; continue }
            let phase = (item["status"] as? [String: Any])?["phase"] as? String ?? "Pending"
            pods[phase, default: 0] += 1
        }
        return (nodes, pods)
    }

    private func agentPicture(_ m: KubernetesMonitor) -> (nodes: Int, pods: [String: Int]) {
        let s = m.snapshot
        return (s.nodes, s.podsByPhase.filter { $0.value > 0 })
    }

    private func assertSamePicture(_ m: KubernetesMonitor, _ what: String) throws {
        let want = try kubectlPicture()
        run(until: { let a = self.agentPicture(m); return a.nodes == want.nodes && a.pods == want.pods }, "\(what): \(want)")
        let got = agentPicture(m)
        XCTAssertEqual(got.nodes, want.nodes, what)
        XCTAssertEqual(got.pods, want.pods, what)
        XCTAssertEqual(m.snapshot.pods, want.pods.values.reduce(0, +), what)
    }

    private func watchers(_ m: KubernetesMonitor, _ resource: String) -> [ResourceWatcher] {
        m.watchers.filter { $0.resource == resource }
    }

    func testCountsAndStatesEqualKubectlThroughCreatesPhaseChangesAndDeletes() throws {
        try startServer()
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        var events: [KubernetesEvent] = []
        var calls: [String] = []
        m.onEvent = { events.append($0) }
        m.onAPICall = { calls.append("\($0) \($1)") }
        m.start()
        run(until: { m.synced }, "first sync")
        XCTAssertEqual(m.clusterCounts.nodes, 2)
        XCTAssertEqual(m.clusterCounts.pods, 5)
        XCTAssertEqual(m.snapshot.version, "v1.30.2-pipeops-test")
        XCTAssertTrue(m.readiness.ok, m.readiness.detail)
        XCTAssertTrue(m.readiness.detail.contains("2 nodes (2 ready), 5 pods (Running 5)"), m.readiness.detail)
        try assertSamePicture(m, "after the first list")
        // Pages of 2: the 5 pods took three pages of one list.
        XCTAssertEqual(watchers(m, "pods").first?.stats.pages, 3)

        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: new-1, namespace: default}\nspec: {containers: [{name: c, image: x}]}\nstatus: {phase: Pending}\n"
        let file = dir + "/pod.yaml"
        try pod.write(toFile: file, atomically: true, encoding: .utf8)
        _ = try server.kubectl(["create", "--validate=false", "-f", file])
        _ = try server.kubectl(["patch", "pod", "app-0", "-n", "default", "--type", "merge", "-p", #"{"status":{"phase":"Failed"}}"#])
        _ = try server.kubectl(["patch", "pod", "app-2", "-n", "default", "--type", "merge", "-p", #"{"status":{"phase":"Succeeded"}}"#])
        _ = try server.kubectl(["delete", "pod", "app-1", "-n", "kube-system"])
        _ = try server.kubectl(["delete", "node", "node-1"])
        try assertSamePicture(m, "after creates, phase changes and deletes")
        XCTAssertEqual(m.snapshot.podsByPhase, ["Pending": 1, "Running": 2, "Succeeded": 1, "Failed": 1, "Unknown": 0])

        let event = "apiVersion: v1\nkind: Event\nmetadata: {name: ev-1, namespace: default}\ninvolvedObject: {kind: Pod, name: new-1, namespace: default}\ntype: Warning\nreason: BackOff\nmessage: Back-off restarting failed container\ncount: 3\n"
        try event.write(toFile: file, atomically: true, encoding: .utf8)
        _ = try server.kubectl(["create", "--validate=false", "-f", file])
        run(until: { !events.isEmpty }, "the kubernetes_event push")
        XCTAssertEqual(events.first, try KubernetesEvent(JSONFields(JSONParser.parse(
            #"{"type":"Warning","reason":"BackOff","message":"Back-off restarting failed container","involvedObject":{"kind":"Pod","name":"new-1","namespace":"default"},"count":3}"#))))
        XCTAssertEqual(events.first?.object, "Pod/new-1")
        // Every call went through the hook and the counters agree with it.
        XCTAssertTrue(calls.contains("list 200") && calls.contains("watch 200") && calls.contains("get 200"), "\(calls)")
        XCTAssertEqual(m.apiCalls.reduce(0) { $0 + $1.count }, calls.count)
        // Nothing was relisted along the way.
        XCTAssertEqual(m.watchers.map(\.stats.lists), Array(repeating: 1, count: m.watchers.count))
        m.stop()
    }

    func testAWatchThatEndsIsResumedWithoutARelist() throws {
        try startServer()
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        m.start()
        run(until: { m.synced }, "first sync")
        let podWatcher = try XCTUnwrap(watchers(m, "pods").first)
        let rvBefore = try XCTUnwrap(podWatcher.resourceVersion)
        let since = (try server.requests().last?["seq"] as? Int) ?? 0
        try server.control("end-watches")
        run(until: { podWatcher.stats.resumes >= 1 && podWatcher.phase == .watching }, "the watch resumed")
        _ = try server.kubectl(["delete", "pod", "app-3", "-n", "kube-system"])
        try assertSamePicture(m, "after the resume")
        let after = try server.requests(since: since).filter {
            ($0["path"] as? String) == "/api/v1/pods" && ($0["user_agent"] as? String ?? "").hasPrefix("pipeops-agent/")
        }
        let queries = after.compactMap { $0["query"] as? [String: String] }
        XCTAssertFalse(queries.contains { $0["watch"] == nil }, "a list was made: \(queries)")
        XCTAssertTrue(queries.contains { $0["watch"] == "1" && Int($0["resourceVersion"] ?? "") ?? 0 >= Int(rvBefore) ?? .max }, "\(queries)")
        XCTAssertTrue(queries.allSatisfy { $0["allowWatchBookmarks"] == "true" }, "\(queries)")
        XCTAssertEqual(podWatcher.stats.lists, 1)
        XCTAssertEqual(podWatcher.stats.relistsAfterGone, 0)
        m.stop()
    }

    func testGoneRelistsAndCountsNothingTwice() throws {
        try startServer()
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        m.start()
        run(until: { m.synced }, "first sync")
        // Changes that reach the agent only through its relist: the watches end in the same step
        // and every version it holds is compacted away.
        let newPod: [String: Any] = ["metadata": ["name": "late-1", "namespace": "default"],
                                     "spec": ["containers": [["name": "c", "image": "x"]]], "status": ["phase": "Pending"]]
        try server.control("compact", ["end_watches": true, "writes": [
            ["op": "delete", "resource": "pods", "namespace": "default", "name": "app-4"],
            ["op": "create", "resource": "pods", "object": newPod],
            ["op": "create", "resource": "pods", "object": ["metadata": ["name": "app-0", "namespace": "default"],
                                                            "status": ["phase": "Succeeded"]]],
        ]])
        let podWatcher = try XCTUnwrap(watchers(m, "pods").first)
        run(until: { podWatcher.stats.relistsAfterGone >= 1 && podWatcher.phase == .watching }, "the relist after 410")
        try assertSamePicture(m, "after the relist")
        XCTAssertEqual(m.snapshot.pods, 5)
        XCTAssertEqual(podWatcher.stats.lists, 2)
        m.stop()
    }

    func testAnAPIServerRestartIsRecovered() throws {
        try startServer()
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        m.start()
        run(until: { m.synced }, "first sync")
        try server.control("restart", ["down_seconds": 2])
        run(until: { !m.readiness.ok }, "the outage on /ready")
        XCTAssertTrue(m.readiness.detail.contains(server.url), m.readiness.detail)
        XCTAssertEqual(m.clusterCounts.pods, 5, "the state survives the outage")
        run(until: { m.readiness.ok }, timeout: 30, "recovery")
        _ = try server.kubectl(["delete", "pod", "app-0", "-n", "default"])
        try assertSamePicture(m, "after the restart")
        XCTAssertEqual(watchers(m, "pods").first?.stats.lists, 1, "resumed from the version it had, no relist")
        m.stop()
    }

    func testARotatedTokenFileIsUsedAndA401MakesItReadAgain() throws {
        let serverToken = dir + "/server-token"
        let agentToken = dir + "/agent-token"
        try "tok-1111".write(toFile: serverToken, atomically: true, encoding: .utf8)
        try "tok-1111".write(toFile: agentToken, atomically: true, encoding: .utf8)
        try startServer(tokenFile: serverToken)
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir, user: "    tokenFile: \(agentToken)\n"))
        m.start()
        run(until: { m.synced }, "first sync")
        let client = try XCTUnwrap(m.client)

        // Rotation as kubelet does it: a new file replaces the old one.
        try "tok-2222".write(toFile: serverToken, atomically: true, encoding: .utf8)
        try "tok-2222".write(toFile: agentToken, atomically: true, encoding: .utf8)
        let readsBefore = client.token.reads
        run(until: { client.token.current() == "tok-2222" }, "the new token read")
        try server.control("end-watches")
        _ = try server.kubectl(["--token", "tok-2222", "delete", "pod", "app-0", "-n", "default"])
        run(until: { m.clusterCounts.pods == 4 }, "a change seen with the new token")
        XCTAssertGreaterThan(client.token.reads, readsBefore)
        XCTAssertEqual(client.calls.filter { $0.key.code == "401" }.count, 0)

        // A change the stamp cannot see (same inode, size and mtime): only the 401 reveals it.
        var before = stat()
        XCTAssertEqual(stat(agentToken, &before), 0)
        let stampBefore = FileStamp(path: agentToken)
        try "tok-3333".write(toFile: serverToken, atomically: true, encoding: .utf8)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: agentToken))
        handle.write(Data("tok-3333".utf8))
        handle.closeFile()
        var times = [before.st_atim, before.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, agentToken, &times, 0), 0, "restoring the mtime to the nanosecond")
        XCTAssertEqual(FileStamp(path: agentToken), stampBefore, "the change must be invisible to the stamp")
        try server.control("end-watches")
        _ = try server.kubectl(["--token", "tok-3333", "delete", "pod", "app-1", "-n", "kube-system"])
        run(until: { m.clusterCounts.pods == 3 }, "a change seen after the 401")
        XCTAssertGreaterThan(client.calls.filter { $0.key.code == "401" }.reduce(0) { $0 + $1.value }, 0)
        XCTAssertEqual(client.token.current(), "tok-3333")
        XCTAssertTrue(m.readiness.ok, m.readiness.detail)
        m.stop()
    }

    func testWrongCAWrongTokenAndUnreachableAreNamedOnReady() throws {
        try startServer()
        let wrongCA = monitor(kubeconfig: try server.kubeconfig(in: dir, name: "ca", cluster: "    server: \(server.url)\n    certificate-authority: \(pki.otherCA)\n"))
        let wrongToken = monitor(kubeconfig: try server.kubeconfig(in: dir, name: "tok", user: "    token: not-the-token\n"))
        let closed = try freeLocalPortForTest()
        let unreachable = monitor(kubeconfig: try server.kubeconfig(in: dir, name: "down", cluster: "    server: https://127.0.0.1:\(closed)\n    certificate-authority: \(pki.ca)\n"))
        for m in [wrongCA, wrongToken, unreachable] { m.start() }
        run(until: { [wrongCA, wrongToken, unreachable].allSatisfy { $0.client?.lastFailure != nil } }, "three failures")
        for m in [wrongCA, wrongToken, unreachable] { XCTAssertFalse(m.readiness.ok, m.readiness.detail) }
        XCTAssertTrue(wrongCA.readiness.detail.lowercased().contains("certificate"), wrongCA.readiness.detail)
        XCTAssertTrue(wrongToken.readiness.detail.contains("401 Unauthorized"), wrongToken.readiness.detail)
        XCTAssertTrue(unreachable.readiness.detail.lowercased().contains("refused"), unreachable.readiness.detail)
        XCTAssertEqual(wrongToken.snapshot.synced, false)
        XCTAssertNil(wrongToken.clusterCounts.pods)
        for m in [wrongCA, wrongToken, unreachable] { m.stop() }
    }

    func testRetriesHonourRetryAfterAndCountEveryCall() throws {
        try startServer(seedNodes: 0, seedPods: 0)
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        let client = try XCTUnwrap(m.client)
        try server.control("fail", ["status": 503, "count": 2, "retry_after": 0])
        var result: Result<JSONValue, KubernetesError>?
        client.get("/version") { result = $0 }
        run(until: { result != nil }, "/version")
        XCTAssertEqual(try result?.get().text().contains("v1.30.2-pipeops-test"), true)
        XCTAssertEqual(client.calls[.init(verb: "get", code: "503")], 2)
        XCTAssertEqual(client.calls[.init(verb: "get", code: "200")], 1)
        // A Status body becomes an error naming its reason and message.
        result = nil
        client.get("/api/v1/namespaces/default/pods/nope") { result = $0 }
        run(until: { result != nil }, "a 404")
        guard case .failure(let e)? = result else { return XCTFail("expected a failure") }
        XCTAssertEqual(e.code, 404)
        XCTAssertEqual(e.reason, "NotFound")
        XCTAssertEqual(e.description, "HTTP 404 NotFound: pods \"nope\" not found")
    }

    func testAPodLogIsFollowedInOrderAndEndsWithThePod() throws {
        try startServer(seedNodes: 1, seedPods: 1)
        try server.control("logs", ["namespace": "default", "pod": "app-0", "lines": ["old-1", "old-2", "old-3"]])
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        var lines: [String] = []
        var end: PodLogStream.End?
        let stream = try XCTUnwrap(m.followPodLog(namespace: "default", pod: "app-0", tailLines: 2,
                                                  onLine: { lines.append($0) }, onEnd: { end = $0 }))
        run(until: { lines.count == 2 }, "the tail")
        XCTAssertEqual(lines, ["old-2", "old-3"])
        let more = (1...200).map { "line \($0) " + String(repeating: "x", count: $0 % 50) }
        try server.control("logs", ["namespace": "default", "pod": "app-0", "lines": Array(more[..<100])])
        run(until: { lines.count == 102 }, "lines as the pod writes them")
        // Paused: nothing is delivered; resumed: everything, in order.
        stream.pause()
        try server.control("logs", ["namespace": "default", "pod": "app-0", "lines": Array(more[100...])])
        loop.run(until: { false }, timeout: .milliseconds(300))
        XCTAssertEqual(lines.count, 102, "a paused stream delivers nothing")
        stream.resume()
        run(until: { lines.count == 202 }, "the held lines")
        XCTAssertEqual(lines, ["old-2", "old-3"] + more)
        // The pod ends: so does the stream.
        _ = try server.kubectl(["patch", "pod", "app-0", "-n", "default", "--type", "merge", "-p", #"{"status":{"phase":"Succeeded"}}"#])
        run(until: { end != nil }, "the end of the log")
        XCTAssertEqual(end, .ended)
        XCTAssertEqual(stream.linesDelivered, 202)
    }

    func testASlowReaderIsCutOffAndAMissingPodIsAnError() throws {
        try startServer(seedNodes: 1, seedPods: 2)
        let m = monitor(kubeconfig: try server.kubeconfig(in: dir))
        var limits = PodLogStream.Limits()
        limits.maxPause = .milliseconds(300)
        var end: PodLogStream.End?
        let slow = try XCTUnwrap(m.followPodLog(namespace: "default", pod: "app-0", limits: limits, onLine: { _ in }, onEnd: { end = $0 }))
        slow.pause()
        run(until: { end != nil }, "the cut-off")
        XCTAssertEqual(end, .slowReader("paused for more than 300ms"))

        var cancelledEnd: PodLogStream.End?
        let c = try XCTUnwrap(m.followPodLog(namespace: "kube-system", pod: "app-1", onLine: { _ in }, onEnd: { cancelledEnd = $0 }))
        c.cancel()
        XCTAssertEqual(cancelledEnd, .cancelled)

        var missing: PodLogStream.End?
        let s = m.followPodLog(namespace: "default", pod: "nope", onLine: { _ in }, onEnd: { missing = $0 })
        run(until: { missing != nil }, "the 404")
        guard case .failed(let e)? = missing else { return XCTFail("\(String(describing: missing))") }
        XCTAssertEqual(e.code, 404)
        XCTAssertTrue(e.description.contains("pods \"nope\" not found"), e.description)
        _ = s
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
func freeLocalPortForTest() throws -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var a = addr
    let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0 else { throw KubeTestError("bind failed") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return Int(UInt16(bigEndian: a.sin_port))
}
