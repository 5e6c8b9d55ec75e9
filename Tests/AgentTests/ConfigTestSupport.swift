import Foundation
import XCTest
@testable import Agent

/// The configuration example of docs/architecture.md, verbatim (trailing spaces included).
let configArchitectureExampleYAML = """
# ~/.pipeops-agent.yaml
agent:
  id: "agent-prod-east-001"
  name: "Production East Agent"
  cluster_name: "production-east"
  version: "v2.0.0"
  port: 8080
  labels:
    environment: "production"
    region: "us-east-1"

pipeops:
  api_url: "https://api.pipeops.io"
  token: "your-token-here"
  
server:
  enable_websocket: true
  enable_sse: true
  enable_dashboard: true
  cors_enabled: true
  
realtime:
  websocket_port: 8080
  sse_heartbeat: "30s"
  connection_timeout: "5m"
  max_connections: 100

kubernetes:
  in_cluster: true
  namespace: "pipeops-system"
  kubeconfig: ""

logging:
  level: "info"
  format: "json"
  
features:
  health_monitoring: true
  runtime_metrics: true
  feature_detection: true
  connectivity_testing: true

"""

/// The multi-port forwarding example of docs/architecture.md.
let configArchitectureTunnelYAML = """
tunnel:
  enabled: true
  forwards:
    - name: "kubernetes-api"
      local_addr: "localhost:6443"
      remote_port: 0  # Allocated by control plane
    - name: "kubelet-metrics"
      local_addr: "localhost:10250"
      remote_port: 0
    - name: "agent-http"
      local_addr: "localhost:8080"
      remote_port: 0

"""

/// A fresh temporary directory, removed when the test ends.
func makeConfigTestDirectory(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("pipeops-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

/// Loads YAML text as if it were the file `config.yaml`.
func loadConfigYAML(_ yaml: String, environment: [String: String] = [:], overrides: [String: String] = [:])
    throws -> (AgentConfig, warnings: [String]) {
    try ConfigLoader.load(yaml: yaml, fileName: "config.yaml", environment: environment, overrides: overrides)
}

/// The error text a load gives, or a failure when it succeeds.
func configLoadError(_ yaml: String, environment: [String: String] = [:], overrides: [String: String] = [:],
               file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        _ = try loadConfigYAML(yaml, environment: environment, overrides: overrides)
        XCTFail("expected the config to be rejected", file: file, line: line)
        return ""
    } catch {
        return "\(error)"
    }
}
