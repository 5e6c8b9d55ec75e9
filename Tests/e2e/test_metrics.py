"""End to end: the agent's /metrics read by promtool (Debian's `prometheus` package) and scraped by a
real Prometheus server, with traffic sent through the tunnel (tests taking `tunnel_cp` run with the
double's chisel server and with `pipeops-agent tunnel-server`), and the Kubernetes metrics against
the Kubernetes API test server."""

import socket
import subprocess

import requests

from harness import echo_roundtrip, free_port, pattern, wait_for
from test_kubernetes import kube_yaml, kubectl_counts
from harness import up_tunnel

DOCUMENTED = [
    "pipeops_agent_status", "pipeops_websocket_connections", "pipeops_sse_connections", "pipeops_http_requests_total",
    "pipeops_cluster_nodes_total", "pipeops_cluster_pods_total", "pipeops_agent_uptime_seconds",
    "pipeops_kubernetes_api_calls_total", "pipeops_tunnel_up", "pipeops_tunnel_reconnects_total",
    "pipeops_tunnel_connections_active", "pipeops_tunnel_connections_total", "pipeops_tunnel_bytes_total",
    "pipeops_tunnel_dial_errors_total", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
    "process_max_fds", "process_start_time_seconds",
]


def scrape(agent) -> dict:
    """The agent's samples, parsed by prometheus_client: {(name, frozenset(labels)): value}."""
    from prometheus_client.parser import text_string_to_metric_families
    r = agent.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def open_echo(port: int, data: bytes) -> socket.socket:
    """Sends `data` through the echo at `port`, reads it all back, and leaves the connection open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        chunk = s.recv(1 << 20)
        assert chunk, "echo closed early"
        got.extend(chunk)
    assert bytes(got) == data
    return s


def test_promtool_accepts_the_live_metrics_with_every_documented_name(cp, echo, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{echo.port}"})
    up_tunnel(cp, agent, {"kubernetes-api": free_port()})
    agent.get("/health")
    agent.get("/no/such/route")
    text = agent.get("/metrics").text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"promtool: {check.stdout}{check.stderr}\n{text}"
    assert check.stdout == "" and check.stderr == ""
    for name in DOCUMENTED:
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name
    samples = scrape(agent)
    assert sample(samples, "pipeops_http_requests_total", endpoint="/health", code="200") == 1
    assert sample(samples, "pipeops_http_requests_total", endpoint="other", code="401") == 1   # no token: 401 before 404
    assert sample(samples, "pipeops_agent_status") == 1   # registered
    assert sample(samples, "pipeops_tunnel_up") == 1


def test_tunnel_counters_count_open_connections_dial_errors_and_survive_a_reconnect(tunnel_cp, echo, agents):
    cp = tunnel_cp
    closed = free_port()   # nothing listens here: every tunnelled connection to it is a dial error
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{echo.port}", "kubelet-metrics": f"127.0.0.1:{closed}"})
    k8s, kubelet = free_port(), free_port()
    up_tunnel(cp, agent, {"kubernetes-api": k8s, "kubelet-metrics": kubelet})
    done = pattern((3 << 20) + 17, seed=3)
    assert echo_roundtrip(k8s, done) == done
    wait_for(lambda: sample(scrape(agent), "pipeops_tunnel_connections_active", forward="kubernetes-api") == 0,
             what="the first connection closed")
    # A connection still open: its bytes count as soon as they have moved (the echo came back).
    live = pattern((1 << 20) + 5, seed=4)
    conn = open_echo(k8s, live)
    s = scrape(agent)
    total = len(done) + len(live)
    assert sample(s, "pipeops_tunnel_bytes_total", forward="kubernetes-api", direction="in") == total
    assert sample(s, "pipeops_tunnel_bytes_total", forward="kubernetes-api", direction="out") == total
    assert sample(s, "pipeops_tunnel_connections_active", forward="kubernetes-api") == 1
    assert sample(s, "pipeops_tunnel_connections_total", forward="kubernetes-api") == 2
    assert sample(s, "pipeops_tunnel_dial_errors_total", forward="kubernetes-api") == 0
    # Three connections to the forward whose local address is closed: three dial errors, no connection.
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", kubelet), timeout=10)
        c.settimeout(10)
        assert c.recv(1) == b""   # the server closes it once the agent refuses the channel
        c.close()
    wait_for(lambda: sample(scrape(agent), "pipeops_tunnel_dial_errors_total", forward="kubelet-metrics") == 3,
             what="three dial errors")
    s = scrape(agent)
    assert sample(s, "pipeops_tunnel_connections_total", forward="kubelet-metrics") == 0
    assert sample(s, "pipeops_tunnel_reconnects_total") == 0
    # The tunnel server goes away with the connection open: the session ends, the counts stay.
    cp.stop_tunnel()
    wait_for(lambda: sample(scrape(agent), "pipeops_tunnel_up") == 0, what="tunnel down")
    cp.start_tunnel()
    cp.wait_ports({k8s, kubelet})
    wait_for(lambda: sample(scrape(agent), "pipeops_tunnel_up") == 1, what="tunnel up again")
    conn.close()
    s = wait_for(lambda: (lambda s: s if sample(s, "pipeops_tunnel_connections_active", forward="kubernetes-api") == 0 else None)(scrape(agent)),
                 what="the open connection's end counted")
    assert sample(s, "pipeops_tunnel_reconnects_total") >= 1
    assert sample(s, "pipeops_tunnel_bytes_total", forward="kubernetes-api", direction="in") == total
    assert sample(s, "pipeops_tunnel_connections_total", forward="kubernetes-api") == 2


def test_prometheus_scrapes_the_agent_and_sees_the_bytes_sent_through_the_tunnel(tunnel_cp, echo, agents, prometheus):
    cp = tunnel_cp
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{echo.port}"})
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    sent = pattern((2 << 20) + 123, seed=9)
    assert echo_roundtrip(port, sent) == sent
    held = open_echo(port, pattern(4099, seed=10))   # and one still open while Prometheus scrapes
    total = len(sent) + 4099
    prom = prometheus([f"127.0.0.1:{agent.port}"])
    prom.wait_value('up{job="pipeops-agent"}', lambda v: v == 1)
    assert prom.wait_value("pipeops_agent_uptime_seconds", lambda v: v > 0) > 0
    for direction in ("in", "out"):
        expr = f'pipeops_tunnel_bytes_total{{forward="kubernetes-api",direction="{direction}"}}'
        assert prom.wait_value(expr, lambda v: v == total) == total
    assert prom.value('pipeops_tunnel_connections_active{forward="kubernetes-api"}') == 1
    assert prom.value("pipeops_tunnel_up") == 1
    # Prometheus's own scrapes are counted by route and status.
    assert prom.wait_value('pipeops_http_requests_total{endpoint="/metrics",code="200"}', lambda v: v >= 1) >= 1
    held.close()
    assert requests.get(f"{prom.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"][0]["health"] == "up"


def kubernetes_calls(samples: dict) -> dict:
    """{(verb, code): count} of pipeops_kubernetes_api_calls_total."""
    return {(dict(l)["verb"], dict(l)["code"]): v for (n, l), v in samples.items() if n == "pipeops_kubernetes_api_calls_total"}


def test_kubernetes_metrics_follow_the_api_server_the_agent_watches(cp, kube, agents):
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:1"}, extra_yaml=kube_yaml(kube.kubeconfig()))
    nodes, pods = kubectl_counts(kube)
    s = wait_for(lambda: (lambda s: s if s.get(("pipeops_cluster_nodes_total", frozenset())) == nodes else None)(scrape(agent)),
                 what=f"pipeops_cluster_nodes_total == {nodes}")
    assert sample(s, "pipeops_cluster_pods_total") == pods
    # Every request the API server saw from the agent is one counted call (by the head's status).
    def agent_requests() -> int:
        return len([r for r in kube.control_get("requests") if r["user_agent"].startswith("pipeops-agent/")])
    wait_for(lambda: sum(kubernetes_calls(scrape(agent)).values()) == agent_requests(), what="calls == the server's requests")
    calls = kubernetes_calls(scrape(agent))
    assert {v for v, _ in calls} <= {"get", "list", "watch"} and ("list", "200") in calls and ("watch", "200") in calls
    # Two injected 503s on the next requests (the watches are ended, so the agent asks again).
    kube.control("fail", {"status": 503, "count": 2})
    kube.control("end-watches")
    wait_for(lambda: sum(v for (_, code), v in kubernetes_calls(scrape(agent)).items() if code == "503") == 2,
             what="two calls counted with code 503")
    kube.kubectl("delete", "node", "node-1")
    wait_for(lambda: sample(scrape(agent), "pipeops_cluster_nodes_total") == nodes - 1, what="one node fewer")
    text = agent.get("/metrics").text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"promtool: {check.stdout}{check.stderr}\n{text}"
