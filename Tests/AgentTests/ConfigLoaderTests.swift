import Foundation
import XCTest
@testable import Agent
@testable import Reactor

final class ConfigLoaderTests: XCTestCase {
    // MARK: the architecture example

    func testArchitectureExampleLoadsEveryKey() throws {
        let (config, warnings) = try loadConfigYAML(configArchitectureExampleYAML + configArchitectureTunnelYAML)
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(config.agent.id, "agent-prod-east-001")
        XCTAssertEqual(config.agent.name, "Production East Agent")
        XCTAssertEqual(config.agent.clusterName, "production-east")
        XCTAssertEqual(config.agent.version, "v2.0.0")
        XCTAssertEqual(config.agent.port, 8080)
        XCTAssertEqual(config.agent.labels, ["environment": "production", "region": "us-east-1"])
        XCTAssertEqual(config.pipeops.apiURL, "https://api.pipeops.io")
        XCTAssertEqual(config.pipeops.token, "your-token-here")
        XCTAssertTrue(config.server.enableWebSocket)
        XCTAssertTrue(config.server.enableSSE)
        XCTAssertTrue(config.server.enableDashboard)
        XCTAssertTrue(config.server.corsEnabled)
        XCTAssertEqual(config.realtime.websocketPort, 8080)
        XCTAssertEqual(config.realtime.sseHeartbeat, .seconds(30))
        XCTAssertEqual(config.realtime.connectionTimeout, .seconds(300))
        XCTAssertEqual(config.realtime.maxConnections, 100)
        XCTAssertEqual(config.kubernetes.inCluster, true)
        XCTAssertEqual(config.kubernetes.namespace, "pipeops-system")
        XCTAssertNil(config.kubernetes.kubeconfig, "an empty kubeconfig means none")
        XCTAssertEqual(config.logging.level, .info)
        XCTAssertEqual(config.logging.format, .json)
        XCTAssertEqual(config.features, FeatureSettings())
        XCTAssertTrue(config.tunnel.enabled)
        XCTAssertEqual(config.tunnel.forwards.map(\.name), ["kubernetes-api", "kubelet-metrics", "agent-http"])
        XCTAssertEqual(config.tunnel.forwards[1].localAddr, "localhost:10250")
        XCTAssertEqual(config.tunnel.forwards[1].remoteBind, "127.0.0.1")
        XCTAssertEqual(config.tunnel.forwards[1].remotePort, 0)
    }

    func testEveryOtherKeyIsReadFromTheFile() throws {
        let yaml = """
        agent:
          heartbeat_interval: 45s
        pipeops:
          tls:
            ca_file: /etc/pipeops/ca.pem
            insecure_skip_verify: false
            cert_file: /etc/pipeops/client.pem
            key_file: /etc/pipeops/client.key
          timeouts:
            connect: 3s
            register: 1m
            heartbeat: 7s
            poll: 8s
        server:
          api_token: local-secret
          metrics_auth: true
          rate_limit: 20
        kubernetes:
          in_cluster: false
          kubeconfig: /root/.kube/config
          api_server: https://10.0.0.1:6443
          token_file: /tmp/token
          ca_file: /tmp/ca.crt
        logging:
          level: debug
          format: console
        reactor:
          backend: io_uring
        tunnel:
          enabled: false
          mode: ssh
          poll_interval: 250ms
          inactivity_timeout: 1h30m
          forwards:
            - name: api
              local_addr: "[::1]:6443"
              remote_bind: 0.0.0.0
              remote_port: 9000
          ssh:
            server: ssh.example.com:2222
            user: tunnel
            password: hunter2
            identity_file: /keys/id_ed25519
            host_key_fingerprint: "SHA256:abc"
        state:
          path: /data/state.json
        """
        let (c, warnings) = try loadConfigYAML(yaml)
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(c.agent.heartbeatInterval, .seconds(45))
        XCTAssertEqual(c.pipeops.tls.caFile, "/etc/pipeops/ca.pem")
        XCTAssertFalse(c.pipeops.tls.insecureSkipVerify)
        XCTAssertEqual(c.pipeops.tls.certFile, "/etc/pipeops/client.pem")
        XCTAssertEqual(c.pipeops.tls.keyFile, "/etc/pipeops/client.key")
        XCTAssertEqual(c.pipeops.timeouts.connect, .seconds(3))
        XCTAssertEqual(c.pipeops.timeouts.register, .seconds(60))
        XCTAssertEqual(c.pipeops.timeouts.heartbeat, .seconds(7))
        XCTAssertEqual(c.pipeops.timeouts.poll, .seconds(8))
        XCTAssertEqual(c.server.apiToken, "local-secret")
        XCTAssertTrue(c.server.metricsAuth)
        XCTAssertEqual(c.server.rateLimit, 20)
        XCTAssertEqual(c.kubernetes.inCluster, false)
        XCTAssertEqual(c.kubernetes.kubeconfig, "/root/.kube/config")
        XCTAssertEqual(c.kubernetes.apiServer, "https://10.0.0.1:6443")
        XCTAssertEqual(c.kubernetes.tokenFile, "/tmp/token")
        XCTAssertEqual(c.kubernetes.caFile, "/tmp/ca.crt")
        XCTAssertEqual(c.logging.level, .debug)
        XCTAssertEqual(c.logging.format, .console)
        XCTAssertEqual(c.reactor.backend, .ioUring)
        XCTAssertFalse(c.tunnel.enabled)
        XCTAssertEqual(c.tunnel.mode, .ssh)
        XCTAssertEqual(c.tunnel.pollInterval, .milliseconds(250))
        XCTAssertEqual(c.tunnel.inactivityTimeout, .seconds(5400))
        XCTAssertEqual(c.tunnel.forwards, [TunnelForward(name: "api", localAddr: "[::1]:6443", remoteBind: "0.0.0.0", remotePort: 9000)])
        XCTAssertEqual(c.tunnel.ssh.server, "ssh.example.com:2222")
        XCTAssertEqual(c.tunnel.ssh.user, "tunnel")
        XCTAssertEqual(c.tunnel.ssh.password, "hunter2")
        XCTAssertEqual(c.tunnel.ssh.identityFile, "/keys/id_ed25519")
        XCTAssertEqual(c.tunnel.ssh.hostKeyFingerprint, "SHA256:abc")
        XCTAssertEqual(c.state.path, "/data/state.json")
    }

    // MARK: defaults

    func testDefaultsWithoutAFile() throws {
        let (c, warnings) = try ConfigLoader.merge(file: nil, fileName: "", environment: ["HOME": "/home/me"], overrides: [:])
        XCTAssertEqual(warnings, [])
        XCTAssertNil(c.agent.id)
        XCTAssertEqual(c.agent.clusterName, "default-cluster")
        XCTAssertEqual(c.agent.port, 8080)
        XCTAssertEqual(c.agent.heartbeatInterval, .seconds(30))
        XCTAssertEqual(c.pipeops.apiURL, "https://api.pipeops.io")
        XCTAssertNil(c.pipeops.token)
        XCTAssertEqual(c.realtime.maxConnections, 100)
        XCTAssertEqual(c.tunnel.mode, .chisel)
        XCTAssertEqual(c.tunnel.pollInterval, .seconds(5))
        XCTAssertEqual(c.tunnel.inactivityTimeout, .zero)
        XCTAssertEqual(c.tunnel.forwards, TunnelForward.defaults(agentPort: 8080))
        XCTAssertEqual(c.logging.level, .info)
        XCTAssertNil(c.kubernetes.inCluster, "automatic")
        XCTAssertEqual(c.state.path, "/home/me/.pipeops-agent-state.json")
    }

    func testEnvironmentDependentDefaults() throws {
        let (c, _) = try ConfigLoader.merge(file: nil, fileName: "", environment: ["KUBERNETES_SERVICE_HOST": "10.43.0.1"], overrides: [:])
        XCTAssertNil(c.kubernetes.inCluster, "still automatic: the service-account files decide")
        XCTAssertEqual(c.state.path, "/var/lib/pipeops/state.json")
    }

    func testDefaultForwardsFollowTheAgentPort() throws {
        let (c, _) = try loadConfigYAML("agent:\n  port: 9191\n")
        XCTAssertEqual(c.tunnel.forwards.last?.localAddr, "localhost:9191")
        let (explicit, _) = try loadConfigYAML("tunnel:\n  forwards: []\n")
        XCTAssertEqual(explicit.tunnel.forwards, [])
    }

    func testNullSectionsAndNullValuesKeepDefaults() throws {
        let (c, warnings) = try loadConfigYAML("agent:\nserver:\n  rate_limit:\npipeops:\n  token: ~\n")
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(c.server.rateLimit, 50)
        XCTAssertNil(c.pipeops.token)
    }

    // MARK: precedence: overrides > environment > file > defaults

    func testEachLayerOverridesThePreviousOne() throws {
        let file = "agent:\n  port: 8081\nlogging:\n  level: warning\npipeops:\n  token: from-file\n"
        let (fileOnly, _) = try loadConfigYAML(file)
        XCTAssertEqual(fileOnly.agent.port, 8081)
        XCTAssertEqual(fileOnly.logging.level, .warning)
        XCTAssertEqual(fileOnly.pipeops.token, "from-file")

        let env = ["PIPEOPS_PORT": "8082", "PIPEOPS_LOG_LEVEL": "error"]
        let (withEnv, _) = try loadConfigYAML(file, environment: env)
        XCTAssertEqual(withEnv.agent.port, 8082)
        XCTAssertEqual(withEnv.logging.level, .error)
        XCTAssertEqual(withEnv.pipeops.token, "from-file", "keys the environment does not set stay from the file")

        let (withFlags, _) = try loadConfigYAML(file, environment: env, overrides: ["agent.port": "8083"])
        XCTAssertEqual(withFlags.agent.port, 8083)
        XCTAssertEqual(withFlags.logging.level, .error)

        let (flagsOverEnvOverDefault, _) = try ConfigLoader.merge(
            file: nil, fileName: "", environment: ["PIPEOPS_LOG_LEVEL": "debug"],
            overrides: ["logging.level": "trace", "tunnel.poll_interval": "2s"])
        XCTAssertEqual(flagsOverEnvOverDefault.logging.level, .trace)
        XCTAssertEqual(flagsOverEnvOverDefault.tunnel.pollInterval, .seconds(2))
    }

    func testEveryEnvironmentVariable() throws {
        let environment = [
            "PIPEOPS_API_URL": "https://cp.example.com/base",
            "PIPEOPS_TOKEN": "env-token",
            "PIPEOPS_CLUSTER_NAME": "env-cluster",
            "PIPEOPS_AGENT_ID": "env-agent",
            "PIPEOPS_LOG_LEVEL": "debug",
            "PIPEOPS_PORT": "9999",
            "PIPEOPS_ENABLE_WEBSOCKET": "false",
            "PIPEOPS_ENABLE_SSE": "0",
            "PIPEOPS_AGENT_API_TOKEN": "env-api-token",
            "PIPEOPS_STATE_PATH": "/srv/state.json",
            "PIPEOPS_REACTOR_BACKEND": "epoll",
            "PIPEOPS_STATE_BACKEND": "file",
        ]
        XCTAssertEqual(Set(environment.keys), Set(ConfigLoader.environmentKeys.map(\.variable)))
        let (c, warnings) = try loadConfigYAML(configArchitectureExampleYAML, environment: environment)
        XCTAssertEqual(warnings, [
            // The example says in_cluster: true; the default forwards then want NODE_IP.
            "$NODE_IP is not set: the kubelet-metrics forward goes to localhost:10250, which a pod does not reach; "
                + "set NODE_IP from the downward API (status.hostIP)",
            "config.yaml:23: realtime.websocket_port (8080) differs from agent.port (9999); WebSocket is served on agent.port",
        ])
        XCTAssertEqual(c.pipeops.apiURL, "https://cp.example.com/base")
        XCTAssertEqual(c.pipeops.token, "env-token")
        XCTAssertEqual(c.agent.clusterName, "env-cluster")
        XCTAssertEqual(c.agent.id, "env-agent")
        XCTAssertEqual(c.logging.level, .debug)
        XCTAssertEqual(c.agent.port, 9999)
        XCTAssertFalse(c.server.enableWebSocket)
        XCTAssertFalse(c.server.enableSSE)
        XCTAssertEqual(c.server.apiToken, "env-api-token")
        XCTAssertEqual(c.state.path, "/srv/state.json")
        XCTAssertEqual(c.reactor.backend, .epoll)
        XCTAssertEqual(c.state.backend, .file)
    }

    func testEmptyEnvironmentVariablesAreIgnored() throws {
        let (c, _) = try loadConfigYAML("pipeops:\n  token: file\n", environment: ["PIPEOPS_TOKEN": "", "PIPEOPS_PORT": ""])
        XCTAssertEqual(c.pipeops.token, "file")
        XCTAssertEqual(c.agent.port, 8080)
    }

    func testKubernetesServiceLinkInPipeopsPortIsIgnored() throws {
        let (c, warnings) = try loadConfigYAML("", environment: ["PIPEOPS_PORT": "tcp://10.43.0.7:8080"])
        XCTAssertEqual(c.agent.port, 8080)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].hasPrefix("$PIPEOPS_PORT: "), warnings[0])
    }

    func testBadEnvironmentValueNamesTheVariable() {
        XCTAssertEqual(configLoadError("", environment: ["PIPEOPS_PORT": "http"]),
                       "$PIPEOPS_PORT: agent.port: expected a port number 0-65535, got \"http\"")
        XCTAssertEqual(configLoadError("", environment: ["PIPEOPS_ENABLE_SSE": "maybe"]),
                       "$PIPEOPS_ENABLE_SSE: server.enable_sse: expected true or false, got \"maybe\"")
    }

    // MARK: command-line overrides

    func testOverridesSetLabelsAndClearOptionals() throws {
        let (c, _) = try loadConfigYAML("agent:\n  labels:\n    a: \"1\"\npipeops:\n  token: t\n",
                                  overrides: ["agent.labels.zone": "b", "pipeops.token": ""])
        XCTAssertEqual(c.agent.labels, ["a": "1", "zone": "b"])
        XCTAssertNil(c.pipeops.token)
        let (replaced, _) = try loadConfigYAML("", overrides: ["agent.labels": "x=1, y = 2"])
        XCTAssertEqual(replaced.agent.labels, ["x": "1", "y": "2"])
    }

    func testUnknownOverrideIsAnError() {
        XCTAssertEqual(configLoadError("", overrides: ["agent.prot": "1"]), "command line: unknown setting \"agent.prot\"")
        XCTAssertEqual(configLoadError("", overrides: ["tunnel.forwards": "x"]),
                       "command line: tunnel.forwards: can only be set in the config file")
        XCTAssertEqual(configLoadError("", overrides: ["logging.level": "verbose"]),
                       "command line: logging.level: expected one of trace, debug, info, warning, error, got \"verbose\"")
    }

    // MARK: errors and warnings from the file

    func testTypeErrorNamesFileLineAndKey() {
        let yaml = "agent:\n  port: 8080\ntunnel:\n  enabled: true\n  poll_interval: soon\n"
        XCTAssertEqual(configLoadError(yaml), "config.yaml:5: tunnel.poll_interval: expected a duration like \"5s\", got \"soon\"")
    }

    func testTypeErrorsOfEveryKind() {
        XCTAssertEqual(configLoadError("agent:\n  port: 70000\n"),
                       "config.yaml:2: agent.port: expected a port number 0-65535, got \"70000\"")
        XCTAssertEqual(configLoadError("agent:\n  port:\n    x: 1\n"),
                       "config.yaml:2: agent.port: expected a port number 0-65535, got a mapping")
        XCTAssertEqual(configLoadError("server:\n  enable_sse: sometimes\n"),
                       "config.yaml:2: server.enable_sse: expected true or false, got \"sometimes\"")
        XCTAssertEqual(configLoadError("tunnel:\n  mode: vpn\n"),
                       "config.yaml:2: tunnel.mode: expected one of chisel, ssh, got \"vpn\"")
        XCTAssertEqual(configLoadError("logging:\n  format: xml\n"),
                       "config.yaml:2: logging.format: expected one of json, console, got \"xml\"")
        XCTAssertEqual(configLoadError("agent:\n  heartbeat_interval: 0s\n"),
                       "config.yaml:2: agent.heartbeat_interval: must be above zero, got \"0s\"")
        XCTAssertEqual(configLoadError("pipeops:\n  api_url: ftp://x\n"),
                       "config.yaml:2: pipeops.api_url: expected an http:// or https:// URL, got \"ftp://x\"")
        XCTAssertEqual(configLoadError("server: [1, 2]\n"),
                       "config.yaml:1: server: expected a mapping, got a list")
        XCTAssertEqual(configLoadError("- a\n- b\n"),
                       "config.yaml:1: expected a mapping of sections (agent:, pipeops:, ...), got a list")
        XCTAssertEqual(configLoadError("agent:\n  cluster_name: \"\"\n"),
                       "config.yaml:2: agent.cluster_name: expected a non-empty string, got \"\"")
        XCTAssertEqual(configLoadError("agent:\n  labels: [a]\n"),
                       "config.yaml:2: agent.labels: expected a mapping of names to values, got a list")
    }

    func testMalformedYAMLIsAnErrorWithALine() {
        let message = configLoadError("agent:\n  port: 8080\n  id: \"unterminated\n")
        XCTAssertTrue(message.hasPrefix("config.yaml:"), message)
        XCTAssertTrue(message.contains("quoted scalar"), message)
    }

    func testUnknownKeysAreWarningsWithPathAndLine() throws {
        let yaml = """
        agent:
          colour: blue
          port: 8080
        extras:
          a: 1
        tunnel:
          forwards:
            - name: api
              local_addr: localhost:6443
              protocol: tcp
        """
        let (c, warnings) = try loadConfigYAML(yaml)
        XCTAssertEqual(c.agent.port, 8080)
        XCTAssertEqual(warnings, [
            "config.yaml:2: unknown key agent.colour (ignored)",
            "config.yaml:4: unknown key extras (ignored)",
            "config.yaml:10: unknown key tunnel.forwards[0].protocol (ignored)",
        ])
    }

    func testForwardErrors() {
        let duplicate = """
        tunnel:
          forwards:
            - name: api
              local_addr: localhost:6443
            - name: api
              local_addr: localhost:6444
        """
        XCTAssertEqual(configLoadError(duplicate),
                       "config.yaml:5: tunnel.forwards[1].name: \"api\" is used twice (first at line 3)")
        XCTAssertEqual(configLoadError("tunnel:\n  forwards:\n    - name: api\n      local_addr: localhost\n"),
                       "config.yaml:4: tunnel.forwards[0].local_addr: expected host:port with a port 1-65535, got \"localhost\"")
        XCTAssertEqual(configLoadError("tunnel:\n  forwards:\n    - name: api\n      local_addr: localhost:0\n"),
                       "config.yaml:4: tunnel.forwards[0].local_addr: expected host:port with a port 1-65535, got \"localhost:0\"")
        XCTAssertEqual(configLoadError("tunnel:\n  forwards:\n    - local_addr: localhost:1\n"),
                       "config.yaml:3: tunnel.forwards[0]: missing \"name\"")
        XCTAssertEqual(configLoadError("tunnel:\n  forwards:\n    - name: a\n      local_addr: h:1\n      remote_port: -1\n"),
                       "config.yaml:5: tunnel.forwards[0].remote_port: expected a port number 0-65535 (0 = allocated), got \"-1\"")
        XCTAssertEqual(configLoadError("tunnel:\n  forwards: 3\n"),
                       "config.yaml:2: tunnel.forwards: expected a list of forwards (- name: ..., local_addr: ...), got \"3\"")
    }

    func testCrossKeyValidation() throws {
        XCTAssertEqual(configLoadError("pipeops:\n  tls:\n    cert_file: /c.pem\n"),
                       "config.yaml:3: pipeops.tls.cert_file: is set but pipeops.tls.key_file is not; a client certificate needs both")
        XCTAssertEqual(configLoadError("tunnel:\n  mode: ssh\n"),
                       "config.yaml:2: tunnel.ssh.server: is required when tunnel.mode is ssh")
        XCTAssertEqual(configLoadError("tunnel:\n  ssh:\n    server: h\n    user: u\n", overrides: ["tunnel.mode": "ssh"]),
                       "command line: tunnel.ssh: needs a password or an identity_file when tunnel.mode is ssh")
        let (_, warnings) = try loadConfigYAML("realtime:\n  websocket_port: 9000\n")
        XCTAssertEqual(warnings, ["config.yaml:2: realtime.websocket_port (9000) differs from agent.port (8080); WebSocket is served on agent.port"])
    }

    func testHomeIsExpandedInPaths() throws {
        let (c, _) = try loadConfigYAML("state:\n  path: ~/state/s.json\nkubernetes:\n  kubeconfig: ~/.kube/config\n",
                                  environment: ["HOME": "/home/op"])
        XCTAssertEqual(c.state.path, "/home/op/state/s.json")
        XCTAssertEqual(c.kubernetes.kubeconfig, "/home/op/.kube/config")
        XCTAssertEqual(configLoadError("state:\n  path: ~/s.json\n"),
                       "config.yaml:2: state.path: cannot expand \"~\" in \"~/s.json\": HOME is not set")
    }

    // MARK: files

    func testExplicitMissingFileIsAnError() {
        XCTAssertThrowsError(try ConfigLoader.load(path: "/nonexistent/pipeops.yaml", environment: [:], overrides: [:])) { error in
            XCTAssertEqual("\(error)", "config file /nonexistent/pipeops.yaml does not exist")
        }
    }

    func testDefaultFileIsUsedOnlyWhenItExists() throws {
        let home = try makeConfigTestDirectory(self)
        let (none, _) = try ConfigLoader.load(path: nil, environment: ["HOME": home], overrides: [:])
        XCTAssertEqual(none.agent.port, 8080)

        try "agent:\n  port: 7070\ntunnel:\n  poll_interval: soon\n".write(
            toFile: home + "/.pipeops-agent.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ConfigLoader.load(path: nil, environment: ["HOME": home], overrides: [:])) { error in
            XCTAssertEqual("\(error)", "~/.pipeops-agent.yaml:4: tunnel.poll_interval: expected a duration like \"5s\", got \"soon\"")
        }
        try "agent:\n  port: 7070\n".write(toFile: home + "/.pipeops-agent.yaml", atomically: true, encoding: .utf8)
        let (found, _) = try ConfigLoader.load(path: nil, environment: ["HOME": home], overrides: [:])
        XCTAssertEqual(found.agent.port, 7070)
    }

    func testExplicitFileAndSizeLimit() throws {
        let dir = try makeConfigTestDirectory(self)
        let path = dir + "/agent.yaml"
        try "logging:\n  level: trace\n".write(toFile: path, atomically: true, encoding: .utf8)
        let (c, _) = try ConfigLoader.load(path: path, environment: [:], overrides: [:])
        XCTAssertEqual(c.logging.level, .trace)

        try Data(repeating: UInt8(ascii: "#"), count: (1 << 20) + 10).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ConfigLoader.load(path: path, environment: [:], overrides: [:])) { error in
            XCTAssertEqual("\(error)", "\(path): file is over the 1 MiB limit")
        }
    }
}

final class ConfigUseTests: XCTestCase {
    func testTokenIsRequiredToRun() throws {
        XCTAssertThrowsError(try AgentConfig().checkReadyToRun()) { error in
            XCTAssertEqual("\(error)", "pipeops.token: is required: set PIPEOPS_TOKEN or pipeops.token in ~/.pipeops-agent.yaml")
        }
        let (c, _) = try loadConfigYAML("", environment: ["PIPEOPS_TOKEN": "t"])
        XCTAssertNoThrow(try c.checkReadyToRun())
        XCTAssertEqual(LogLevel.warning.loggerLevel, .warning)
    }
}
