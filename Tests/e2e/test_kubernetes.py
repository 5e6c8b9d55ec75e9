"""End to end: the agent binary watching the Kubernetes API test server (Tests/Fixtures/kubernetes)
and reporting it (/ready, heartbeats), and kubectl reaching that server through the tunnel."""

import json
import subprocess
import threading

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
    # The agent re-registers with k8s_version once it knows it (a restart resumes with it).
    assert agent.stop() == 0
    since = cp.get("/_test/requests")[-1]["seq"]
    again = agents.restart(agent)
    reg = cp.wait_requests("register", since=since)[0]["body"]
    wait_for(lambda: ready_check(again)["ok"], what="ready again")
    assert reg.get("k8s_version") in (None, "v1.30.2-pipeops-test")
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
