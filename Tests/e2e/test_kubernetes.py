"""End to end: the agent binary watching the Kubernetes API test server (Tests/Fixtures/kubernetes)
and reporting it (/ready, heartbeats), and kubectl reaching that server through the tunnel."""

import json
import subprocess
import threading
import time

from harness import KUBE_TOKEN, free_port, wait_for


def kube_yaml(kubeconfig: str) -> str:
    return f'kubernetes:\n  kubeconfig: "{kubeconfig}"\n'


def kubectl_counts(kube) -> tuple[int, int]:
    items = json.loads(kube.kubectl("get", "nodes,pods", "-A", "-o", "json"))["items"]
    return sum(1 for i in items if i["kind"] == "Node"), sum(1 for i in items if i["kind"] == "Pod")


def ready_check(agent) -> dict:
    return agent.get("/ready").json()["checks"]["kubernetes"]


def test_ready_and_heartbeats_report_what_kubectl_sees(cp, kube, agents):
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:1"}, extra_yaml=kube_yaml(kube.kubeconfig()))
    check = wait_for(lambda: (lambda c: c if c["ok"] else None)(ready_check(agent)), what="kubernetes ready")
    # The first registration waited for the cluster's /version (control-plane-api.md: k8s_version).
    assert cp.wait_requests("register")[0]["body"]["k8s_version"] == "v1.30.2-pipeops-test"
    assert "v1.30.2-pipeops-test" in check["detail"] and "2 nodes (2 ready), 4 pods (Running 4)" in check["detail"]
    nodes, pods = kubectl_counts(kube)
    since = cp.get("/_test/requests")[-1]["seq"]
    hb = cp.wait_requests("heartbeat", since=since)[0]["body"]["metadata"]
    assert (hb["k8s_nodes"], hb["k8s_pods"]) == (nodes, pods) == (2, 4)
    # Changes made while the agent watches reach the next heartbeats.
    kube.kubectl("delete", "pod", "app-1", "-n", "kube-system")
    kube.kubectl("delete", "node", "node-1")
    nodes, pods = kubectl_counts(kube)
    wait_for(lambda: any((r["body"]["metadata"].get("k8s_nodes"), r["body"]["metadata"].get("k8s_pods")) == (nodes, pods)
                         for r in cp.requests_for("heartbeat")), what=f"a heartbeat with {nodes} nodes and {pods} pods")
    # A restart resumes, again with k8s_version.
    assert agent.stop() == 0
    since = cp.get("/_test/requests")[-1]["seq"]
    again = agents.restart(agent)
    reg = cp.wait_requests("register", since=since)[0]["body"]
    wait_for(lambda: ready_check(again)["ok"], what="ready again")
    assert reg["k8s_version"] == "v1.30.2-pipeops-test" and reg["metadata"]["registration_mode"] == "resume"
    assert cp.violations() == []


def test_wrong_ca_wrong_token_and_unreachable_are_named_and_the_tunnel_keeps_working(cp, kube, agents, tmp_path):
    cases = {
        "ca": (kube.kubeconfig("kc-ca", ca=kube.other_ca), "certificate"),
        "token": (kube.kubeconfig("kc-token", token="wrong-token"), "401 Unauthorized"),
        "down": (kube.kubeconfig("kc-down", server=f"https://127.0.0.1:{free_port()}"), "refused"),
    }
    for name, (kubeconfig, cause) in cases.items():
        port = free_port()
        agent = agents(cp.api_url, {"agent-http": f"127.0.0.1:{port}"}, port=port, extra_yaml=kube_yaml(kubeconfig),
                       name=f"agent-{name}")
        check = wait_for(lambda: (lambda c: c if cause.lower() in c["detail"].lower() else None)(ready_check(agent)),
                         what=f"/ready naming {cause!r}")
        assert check["ok"] is False
        assert agent.get("/ready").status_code == 503
        assert agent.get("/health").status_code == 200 and agent.alive()
        # The tunnel is not held back by a broken cluster.
        remote = free_port()
        cp.require_tunnel({"agent-http": remote})
        cp.wait_ports({remote})
        h = wait_for(lambda: agent.get("/health", port=remote), what="health through the tunnel")
        assert h.status_code == 200
        assert agent.stop() == 0


def test_kubectl_lists_pods_and_follows_logs_through_the_tunnel(cp, kube, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{kube.port}"}, extra_yaml=kube_yaml(kube.kubeconfig()))
    remote = free_port()
    cp.require_tunnel({"kubernetes-api": remote})
    cp.wait_ports({remote})
    agent.wait_log(lambda l: l.get("msg") == "tunnel connected", what="tunnel connected")
    through = f"https://127.0.0.1:{remote}"
    # TLS is checked end to end: the test CA, and the name in the server's certificate.
    names = kube.kubectl("get", "pods", "-A", "-o", "name", server=through, extra=["--tls-server-name", "localhost"])
    assert sorted(names.split()) == ["pod/app-0", "pod/app-1", "pod/app-2", "pod/app-3"]
    kube.control("logs", {"namespace": "default", "pod": "app-0", "lines": ["first", "second"]})
    proc = subprocess.Popen(["kubectl", "--server", through, "--certificate-authority", kube.ca, "--tls-server-name",
                             "localhost", "--token", KUBE_TOKEN, "logs", "-f", "app-0", "-n", "default"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(line.rstrip("\n") for line in proc.stdout), daemon=True)
    reader.start()
    wait_for(lambda: len(got) >= 2, what="the first lines")
    kube.control("logs", {"namespace": "default", "pod": "app-0", "lines": ["third"]})
    wait_for(lambda: len(got) >= 3, what="a line written while following")
    kube.kubectl("patch", "pod", "app-0", "-n", "default", "--type", "merge", "-p", '{"status":{"phase":"Succeeded"}}')
    assert proc.wait(30) == 0, proc.stderr.read()
    reader.join(5)
    assert got == ["first", "second", "third"]
    # The agent itself watched the same server all along.
    assert ready_check(agent)["ok"] is True


def test_pod_logs_follow_over_the_hub_and_sse_and_events_are_pushed(cp, kube, agents):
    from websockets.sync.client import connect
    from test_realtime import AUTH, SSEReader, recv_type
    agent = agents(cp.api_url, {"agent-http": "127.0.0.1:1"}, extra_yaml=kube_yaml(kube.kubeconfig()))
    wait_for(lambda: ready_check(agent)["ok"], what="kubernetes ready")
    base = f"http://127.0.0.1:{agent.port}"
    kube.control("logs", {"namespace": "default", "pod": "app-0", "lines": ["one", "two"]})
    kube.control("logs", {"namespace": "default", "pod": "app-2", "lines": ["sse-one"]})
    events = SSEReader(base + "/api/realtime/events", AUTH)
    events.wait("connected")
    sse = SSEReader(base + "/api/realtime/logs?namespace=default&pod=app-2", AUTH)
    with connect(f"ws://127.0.0.1:{agent.port}/ws", additional_headers=AUTH, max_size=None) as ws:
        status = recv_type(ws, "status")["data"]
        assert status["kubernetes"]["available"] is True and status["kubernetes"]["pods"] == 4
        ws.send(json.dumps({"type": "logs", "data": {"namespace": "default", "pod": "app-0"}}))
        lines = []
        while len(lines) < 2:
            m = recv_type(ws, "log")
            assert m["data"]["source"] == "pod" and m["data"]["pod"] == "app-0"
            lines.append(m["data"]["line"])
        kube.control("logs", {"namespace": "default", "pod": "app-0", "lines": ["three"]})
        lines.append(recv_type(ws, "log")["data"]["line"])
        assert lines == ["one", "two", "three"]
        kube.kubectl("patch", "pod", "app-0", "-n", "default", "--type", "merge", "-p", '{"status":{"phase":"Succeeded"}}')
        end = recv_type(ws, "logs_end", timeout=30)
        assert end["data"]["pod"] == "app-0"
        # The phase change reaches the hub's clients as a fresh status, without asking.
        deadline = time.monotonic() + 20
        phases = {}
        while phases.get("Succeeded") != 1 and time.monotonic() < deadline:
            phases = recv_type(ws, "status", timeout=20)["data"]["kubernetes"]["pods_by_phase"]
        assert phases.get("Succeeded") == 1, phases
    # SSE: the first line, a line written while following, then the end with the pod.
    sse.wait("log", lambda d: d["line"] == "sse-one")
    kube.control("logs", {"namespace": "default", "pod": "app-2", "lines": ["sse-two"]})
    sse.wait("log", lambda d: d["line"] == "sse-two")
    kube.control("logs", {"namespace": "default", "pod": "app-2", "end": True})
    sse.wait("logs_end", lambda d: d["pod"] == "app-2")
    with sse.lock:
        got = [e[2]["line"] for e in sse.events if e[1] == "log"]
    assert got == ["sse-one", "sse-two"]
    sse.close()
    # A Kubernetes Event created while the agent watches is pushed as kubernetes_event.
    import requests
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "app-0.backoff", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "app-0", "namespace": "default"}, "type": "Warning",
             "reason": "BackOff", "message": "Back-off restarting failed container web", "count": 3}
    r = requests.post(f"{kube.url}/api/v1/namespaces/default/events", json=event, verify=kube.ca,
                      headers={"Authorization": f"Bearer {KUBE_TOKEN}"}, timeout=10)
    assert r.status_code in (200, 201), r.text
    pushed = events.wait("kubernetes_event", lambda d: d["reason"] == "BackOff")[2]
    assert pushed["object"] == "Pod/app-0" and pushed["type"] == "Warning" and pushed["count"] == 3
    events.close()
