import XCTest
@testable import Agent
@testable import Reactor

final class ConfigPrintTests: XCTestCase {
    func testSecretsAreMaskedWhenSet() throws {
        let (c, _) = try loadConfigYAML("pipeops:\n  token: super-secret-token\nserver:\n  api_token: api-secret\n"
                                  + "tunnel:\n  ssh:\n    password: hunter2\n")
        let text = ConfigPrinter.render(c)
        XCTAssertFalse(text.contains("super-secret-token"))
        XCTAssertFalse(text.contains("api-secret"))
        XCTAssertFalse(text.contains("hunter2"))
        XCTAssertTrue(text.contains("\n  token: \"***\"\n"), text)
        XCTAssertTrue(text.contains("\n  api_token: \"***\"\n"), text)
        XCTAssertTrue(text.contains("\n    password: \"***\"\n"), text)

        let unset = ConfigPrinter.render(AgentConfig())
        XCTAssertTrue(unset.contains("\n  token: null\n"), unset)
        XCTAssertTrue(unset.contains("\n  api_token: null\n"), unset)
    }

    /// A password in a URL (`http://user:pw@host`) is a secret too.
    func testURLUserinfoIsMasked() throws {
        let (c, _) = try loadConfigYAML("pipeops:\n  api_url: \"http://admin:url-secret@cp.example.com:8080/base\"\n"
                                        + "kubernetes:\n  api_server: \"https://k:kube-secret@10.0.0.1:6443\"\n")
        let text = ConfigPrinter.render(c)
        XCTAssertFalse(text.contains("url-secret"), text)
        XCTAssertFalse(text.contains("kube-secret"), text)
        XCTAssertTrue(text.contains("\n  api_url: \"http://***@cp.example.com:8080/base\"\n"), text)
        XCTAssertTrue(text.contains("\n  api_server: \"https://***@10.0.0.1:6443\"\n"), text)
        // A refused value is echoed masked too.
        XCTAssertThrowsError(try loadConfigYAML("pipeops:\n  api_url: \"http://admin:url-secret@cp:notaport\"\n")) { error in
            XCTAssertFalse("\(error)".contains("url-secret"), "\(error)")
            XCTAssertTrue("\(error)".contains("http://***@cp:notaport"), "\(error)")
        }
    }

    /// Found by YAMLConfigFuzz: with `agent.port: 0` (any free port) the default agent-http
    /// forward was `localhost:0`, which the printed config could not load back (a forward's port
    /// is 1-65535). Port 0 now gets no agent-http forward, with a warning that says why.
    func testAnyFreePortPrintsAConfigThatLoadsBack() throws {
        let (c, warnings) = try loadConfigYAML("agent:\n  port: 0\n")
        XCTAssertEqual(c.tunnel.forwards.map(\.name), ["kubernetes-api", "kubelet-metrics"])
        XCTAssertTrue(warnings.contains { $0.contains("agent.port is 0") }, "\(warnings)")
        let printed = ConfigPrinter.render(c)
        let (again, _) = try ConfigLoader.load(yaml: printed, fileName: "printed.yaml", environment: ["HOME": "/home/fuzz"], overrides: [:])
        XCTAssertEqual(ConfigPrinter.render(again), printed)
    }

    /// Found by YAMLConfigFuzz: a value holding a literal `${` (written `$${` in the file) was
    /// printed as `${`, which the reload took for an environment variable.
    func testALiteralDollarBraceIsPrintedSoThatItLoadsBack() throws {
        let (c, _) = try loadConfigYAML("agent:\n  cluster_name: \"a$${4 $${{} $$x\"\n")
        XCTAssertEqual(c.agent.clusterName, "a${4 ${{} $$x")
        let printed = ConfigPrinter.render(c)
        let (again, _) = try ConfigLoader.load(yaml: printed, fileName: "printed.yaml", environment: ["HOME": "/home/fuzz"], overrides: [:])
        XCTAssertEqual(again.agent.clusterName, c.agent.clusterName)
        XCTAssertEqual(ConfigPrinter.render(again), printed)
    }

    /// Found by YAMLConfigFuzz: `$${` followed by a combining mark (U+064F). Expansion compared
    /// Characters, and `{` with its mark is one grapheme that is not `{`, so the literal `$${`
    /// was kept as written; the printer, escaping scalar by scalar, doubled it on every round.
    /// A `${VAR}` whose `}` carries a mark is found the same way.
    func testDollarBraceFollowedByACombiningMarkIsReadByteByByte() throws {
        let (c, _) = try loadConfigYAML("agent:\n  cluster_name: \"a $$${\u{064F}b\"\n  name: \"${HOME}\u{0301}\"\n", environment: ["HOME": "/home/fuzz"])
        XCTAssertEqual(c.agent.clusterName, "a $${\u{064F}b")
        XCTAssertEqual(c.agent.name, "/home/fuzz\u{0301}")
        let printed = ConfigPrinter.render(c)
        let (again, _) = try ConfigLoader.load(yaml: printed, fileName: "printed.yaml", environment: ["HOME": "/home/fuzz"], overrides: [:])
        XCTAssertEqual(again.agent.clusterName, c.agent.clusterName)
        XCTAssertEqual(ConfigPrinter.render(again), printed)
    }

    func testLayoutAndOrderAreStable() throws {
        var config = AgentConfig()
        config.agent.labels = ["zeta": "1", "alpha": "x \"quoted\"", "agent.pipeops.io/version": "v"]
        let text = ConfigPrinter.render(config)
        XCTAssertEqual(text, ConfigPrinter.render(config))
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { !$0.hasPrefix(" ") },
                       ["agent:", "pipeops:", "server:", "realtime:", "kubernetes:", "logging:", "features:", "reactor:", "tunnel:", "state:"])
        XCTAssertEqual(Array(lines.prefix(3)), ["agent:", "  id: null", "  name: null"])
        let labelLines = lines.drop(while: { $0 != "  labels:" }).dropFirst().prefix(3)
        XCTAssertEqual(Array(labelLines), ["    agent.pipeops.io/version: \"v\"", "    alpha: \"x \\\"quoted\\\"\"", "    zeta: \"1\""])
        XCTAssertTrue(text.contains("pipeops:\n  api_url: \"https://api.pipeops.io\"\n  token: null\n  tls:\n    ca_file: null\n"), text)
        XCTAssertTrue(text.contains("\n  heartbeat_interval: \"30s\"\n"), text)
        XCTAssertTrue(text.contains("\n  connection_timeout: \"1m30s\"\n"), text)
        XCTAssertTrue(text.contains("  forwards:\n    - name: \"kubernetes-api\"\n      local_addr: \"localhost:6443\"\n"
                                    + "      remote_bind: \"127.0.0.1\"\n      remote_port: 0\n"), text)
        XCTAssertTrue(text.hasSuffix("state:\n  backend: null\n  path: \"/var/lib/pipeops/state.json\"\n"), text)
    }

    func testPrintedConfigReadsBackToTheSameConfig() throws {
        let (original, _) = try loadConfigYAML(configArchitectureExampleYAML + configArchitectureTunnelYAML
                                         + "state:\n  path: \"/tmp/a\\tb\"\n",
                                         overrides: ["tunnel.inactivity_timeout": "1h2m3s", "agent.labels.odd key": "-"])
        let printed = ConfigPrinter.render(original)
        let (reread, warnings) = try loadConfigYAML(printed)
        XCTAssertEqual(warnings.filter { !$0.contains("websocket_port") }, [])
        var expected = original
        expected.pipeops.token = "***" // masked on purpose
        XCTAssertEqual(reread, expected)
    }
}
