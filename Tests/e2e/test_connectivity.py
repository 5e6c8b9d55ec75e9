"""End to end: `GET /api/status/connectivity` runs real checks now, each within its own 3 s
deadline, and says why one fails (issue 11, item 3; agent-http-api.md). The peers: the
control-plane test double and its chisel server, a loopback listener that never answers, and
`openssl s_server` with an expired certificate."""

import os
import re
import socket
import subprocess

import requests

from harness import ROOT, TOKEN, free_port, terminate, wait_for
from harness import up_tunnel

# The access policy guards /api/*: the cluster token is the API token by default.
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIELDS = {"name", "target", "ok", "latency_ms", "error"}


def connectivity(agent) -> dict:
    agent.wait_log(lambda l: l.get("msg") == "HTTP server listening", what="the agent's HTTP server")
    r = requests.get(f"http://127.0.0.1:{agent.port}/api/status/connectivity", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    report = r.json()
    assert set(report) == {"overall_status", "checks", "timestamp"}, report
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["timestamp"]), report
    for c in report["checks"]:
        assert set(c) == FIELDS and isinstance(c["latency_ms"], (int, float)) and c["latency_ms"] >= 0, c
        assert (c["error"] is None) == c["ok"], c
    return report


def by_name(report: dict) -> dict:
    return {c["name"]: c for c in report["checks"]}


def test_a_forward_at_a_closed_port_fails_with_the_reason_while_the_others_pass(cp, echo, agents):
    closed = free_port()   # nothing listens there
    agent = agents(cp.api_url, {"echo": f"127.0.0.1:{echo.port}", "nothing": f"127.0.0.1:{closed}"})
    up_tunnel(cp, agent, {"echo": free_port()})
    report = connectivity(agent)
    checks = by_name(report)
    # http:// control plane: no TLS check; the tunnel server is known once allocated.
    assert set(checks) == {"control_plane_dns", "control_plane_tcp", "control_plane_health", "tunnel_server_tcp",
                           "forward_tcp:echo", "forward_tcp:nothing"}, checks
    bad = checks["forward_tcp:nothing"]
    assert bad["ok"] is False and bad["target"] == f"127.0.0.1:{closed}", bad
    assert "ECONNREFUSED" in bad["error"] and "Connection refused" in bad["error"], bad
    for name, c in checks.items():
        if name != "forward_tcp:nothing":
            assert c["ok"] is True, c
    assert checks["control_plane_health"]["target"] == cp.api_url + "/health"
    assert report["overall_status"] == "degraded"


def test_a_control_plane_that_never_answers_reports_a_timeout_after_its_deadline(agents):
    # The kernel completes the handshakes into the backlog; nobody ever accepts or answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        api = f"http://127.0.0.1:{silent.getsockname()[1]}"
        agent = agents(api, {"unused": "127.0.0.1:1"}, tunnel_enabled=False)
        report = connectivity(agent)
        checks = by_name(report)
        # The tunnel is disabled: no tunnel server, no forwards.
        assert set(checks) == {"control_plane_dns", "control_plane_tcp", "control_plane_health"}, checks
        assert checks["control_plane_tcp"]["ok"] is True, checks
        health = checks["control_plane_health"]
        assert health["ok"] is False and health["error"] == "timeout after 3 s", health
        assert health["latency_ms"] >= 3000, health
        assert report["overall_status"] == "degraded"
    finally:
        silent.close()


def test_an_expired_control_plane_certificate_is_named(agents, tmp_path):
    pki = str(tmp_path / "pki")
    subprocess.run(["sh", os.path.join(ROOT, "Tests", "Fixtures", "tls", "make-pki.sh"), pki], check=True,
                   capture_output=True)
    port = free_port()
    server = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", f"{pki}/expired.pem",
                               "-key", f"{pki}/expired.key", "-www", "-quiet"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, what="s_server")
        # The test CA is trusted (through OpenSSL's SSL_CERT_FILE), so the one fault is the date.
        agent = agents(f"https://127.0.0.1:{port}", {"unused": "127.0.0.1:1"}, tunnel_enabled=False,
                       env={"SSL_CERT_FILE": f"{pki}/ca.pem"})
        checks = by_name(connectivity(agent))
        assert set(checks) == {"control_plane_dns", "control_plane_tcp", "control_plane_tls", "control_plane_health"}, checks
        assert checks["control_plane_tcp"]["ok"] is True, checks
        tls = checks["control_plane_tls"]
        assert tls["ok"] is False and "certificate has expired" in tls["error"], tls
        assert tls["target"] == f"127.0.0.1:{port}"
        assert "certificate has expired" in checks["control_plane_health"]["error"], checks
    finally:
        terminate(server)


def test_the_kubernetes_api_is_checked_with_the_agents_own_credentials(cp, kube, agents):
    good = agents(cp.api_url, {"agent-http": "127.0.0.1:1"}, tunnel_enabled=False, name="agent-good",
                  extra_yaml=f'kubernetes:\n  kubeconfig: "{kube.kubeconfig()}"\n')
    check = by_name(connectivity(good))["kubernetes_api"]
    assert check["ok"] is True and check["target"] == f"{kube.url}/version", check
    bad = agents(cp.api_url, {"agent-http": "127.0.0.1:1"}, tunnel_enabled=False, name="agent-bad",
                 extra_yaml=f'kubernetes:\n  kubeconfig: "{kube.kubeconfig("kc-bad", token="wrong-token")}"\n')
    check = by_name(connectivity(bad))["kubernetes_api"]
    assert check["ok"] is False and "401" in check["error"], check
