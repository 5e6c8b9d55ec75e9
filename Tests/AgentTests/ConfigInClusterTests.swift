import XCTest
@testable import Agent

/// Where the default forwards go in a pod and on a VM, and `${VAR}` in the config file.
final class ConfigInClusterTests: XCTestCase {
    /// What Kubernetes and the manifest give a pod: the API server's service address and the
    /// node's IP from the downward API.
    let podEnvironment = ["KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443",
                          "NODE_IP": "192.168.1.20"]

    func testInAPodTheDefaultForwardsGoToTheAPIServerTheNodesKubeletAndTheAgent() throws {
        let (c, warnings) = try loadConfigYAML("agent:\n  port: 9090\n", environment: podEnvironment)
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(c.tunnel.forwards.map(\.name), ["kubernetes-api", "kubelet-metrics", "agent-http"])
        XCTAssertEqual(c.tunnel.forwards.map(\.localAddr), ["10.43.0.1:443", "192.168.1.20:10250", "localhost:9090"])
    }

    func testOnAVMTheDefaultForwardsStayOnLocalhost() throws {
        let (c, warnings) = try loadConfigYAML("", environment: ["NODE_IP": "192.168.1.20"])
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(c.tunnel.forwards.map(\.localAddr), ["localhost:6443", "localhost:10250", "localhost:8080"])
    }

    func testInClusterCanBeTurnedOffAndOnByConfig() throws {
        let (off, _) = try loadConfigYAML("kubernetes:\n  in_cluster: false\n", environment: podEnvironment)
        XCTAssertEqual(off.tunnel.forwards[0].localAddr, "localhost:6443")
        let (on, _) = try loadConfigYAML("kubernetes:\n  in_cluster: true\n", environment: ["NODE_IP": "10.0.0.5"])
        XCTAssertEqual(on.tunnel.forwards.map(\.localAddr), ["kubernetes.default.svc:443", "10.0.0.5:10250", "localhost:8080"])
    }

    func testIPv6AddressesAreBracketed() throws {
        let env = ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "6443", "NODE_IP": "fd00::20"]
        let (c, _) = try loadConfigYAML("", environment: env)
        XCTAssertEqual(c.tunnel.forwards[0].localAddr, "[fd00:10:96::1]:6443")
        XCTAssertEqual(c.tunnel.forwards[1].localAddr, "[fd00::20]:10250")
    }

    func testMissingNodeIPOrABadServicePortWarns() throws {
        let (c, warnings) = try loadConfigYAML("", environment: ["KUBERNETES_SERVICE_HOST": "10.43.0.1",
                                                                 "KUBERNETES_SERVICE_PORT": "https"])
        XCTAssertEqual(c.tunnel.forwards.map(\.localAddr), ["10.43.0.1:443", "localhost:10250", "localhost:8080"])
        XCTAssertEqual(warnings, [
            "$KUBERNETES_SERVICE_PORT: ignoring \"https\" (not a port); using 443",
            "$NODE_IP is not set: the kubelet-metrics forward goes to localhost:10250, which a pod does not reach; "
                + "set NODE_IP from the downward API (status.hostIP)",
        ])
    }

    func testAConfiguredForwardWinsInAPod() throws {
        let yaml = """
        tunnel:
          forwards:
            - { name: "kubernetes-api", local_addr: "apiserver.internal:6443" }
        """
        let (c, _) = try loadConfigYAML(yaml, environment: podEnvironment)
        XCTAssertEqual(c.tunnel.forwards, [TunnelForward(name: "kubernetes-api", localAddr: "apiserver.internal:6443")])
    }

    // MARK: ${VAR}

    func testVariablesInValuesAreExpanded() throws {
        let yaml = """
        agent:
          cluster_name: "${CLUSTER}-east"
          labels:
            node: ${NODE_NAME}
        tunnel:
          forwards:
            - { name: "kubelet-metrics", local_addr: "${NODE_IP}:10250" }
            - { name: "literal", local_addr: "localhost:1", remote_bind: "$${kept}$x" }
        """
        let env = ["CLUSTER": "prod", "NODE_NAME": "node-a", "NODE_IP": "10.1.2.3"]
        let (c, _) = try loadConfigYAML(yaml, environment: env)
        XCTAssertEqual(c.agent.clusterName, "prod-east")
        XCTAssertEqual(c.agent.labels, ["node": "node-a"])
        XCTAssertEqual(c.tunnel.forwards[0].localAddr, "10.1.2.3:10250")
        XCTAssertEqual(c.tunnel.forwards[1].remoteBind, "${kept}$x")
    }

    func testAnUnsetVariableNamesTheKeyAndTheLine() {
        let yaml = """
        agent:
          port: 8080
        tunnel:
          forwards:
            - name: "kubelet-metrics"
              local_addr: "${NODE_IP}:10250"
        """
        XCTAssertEqual(configLoadError(yaml, environment: ["NODE_IP": ""]),
                       "config.yaml:6: tunnel.forwards[0].local_addr: ${NODE_IP}: the environment variable NODE_IP is not set")
        XCTAssertEqual(configLoadError("agent:\n  name: \"${AGENT\"\n"),
                       "config.yaml:2: agent.name: unterminated \"${\" in \"${AGENT\" (write $${ for a literal ${)")
        XCTAssertEqual(configLoadError("agent:\n  name: ${1X}\n"),
                       "config.yaml:2: agent.name: \"${1X}\" is not an environment variable name")
    }

    func testAnExpandedValueIsStillChecked() {
        XCTAssertEqual(configLoadError("agent:\n  port: ${PORT}\n", environment: ["PORT": "http"]),
                       "config.yaml:2: agent.port: expected a port number 0-65535, got \"http\"")
    }
}
