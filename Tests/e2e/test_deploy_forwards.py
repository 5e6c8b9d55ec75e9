"""End to end: where the agent's default forwards go in a pod. The pod is faked on loopback:
KUBERNETES_SERVICE_HOST/_PORT name a stand-in API server on 127.0.0.1, NODE_IP a loopback
address whose port 10250 is a stand-in kubelet, and the service-account files lie in a
temporary directory. The control-plane test double asks for the tunnel, and each forward is
reached through it."""

from __future__ import annotations

import errno
import os
import random
import subprocess

import pytest
import requests

from harness import HelloServer, agent_binary, free_port, wait_for

KUBELET_PORT = 10250


@pytest.fixture
def apiserver():
    s = HelloServer("the API server")
    yield s
    s.stop()


@pytest.fixture
def kubelet():
    """A stand-in kubelet on NODE_IP:10250, NODE_IP being a free 127.x.y.z address."""
    for _ in range(50):
        node_ip = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            s = HelloServer("the kubelet", host=node_ip, port=KUBELET_PORT)
            break
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    else:
        raise AssertionError(f"no free 127.x.y.z:{KUBELET_PORT} found")
    s.node_ip = node_ip
    yield s
    s.stop()


def pod_environment(tmp_path, apiserver, kubelet) -> tuple[dict[str, str], str]:
    """The environment Kubernetes and the manifest give the agent's pod, and the config lines
    that point at the service-account files in `tmp_path`."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("fake-service-account-token")
    (sa / "ca.crt").write_text("")
    (sa / "namespace").write_text("pipeops-system")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(apiserver.port),
           "NODE_IP": kubelet.node_ip, "NODE_NAME": "node-a",
           # The stand-in API server is no Kubernetes API: keep the state in the file, not the
           # Secret that is the default in a pod (test_state_secret.py tests that).
           "PIPEOPS_STATE_BACKEND": "file"}
    yaml = f'kubernetes:\n  token_file: "{sa / "token"}"\n  ca_file: "{sa / "ca.crt"}"\n'
    return env, yaml


def forward_log(agent) -> dict[str, str]:
    agent.wait_log(lambda l: l.get("msg") == "tunnel forward", what="tunnel forward log lines")
    return {l["forward"]: l["local_addr"] for l in agent.logs() if l.get("msg") == "tunnel forward"}


def get_through(port: int) -> str:
    return wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=5), what=f"GET through :{port}").text


def test_in_a_pod_the_default_forwards_reach_the_api_server_the_nodes_kubelet_and_the_agent(
        cp, agents, apiserver, kubelet, tmp_path):
    env, yaml = pod_environment(tmp_path, apiserver, kubelet)
    agent = agents(cp.api_url, {}, env=env, extra_yaml=yaml)
    assert forward_log(agent) == {"kubernetes-api": f"127.0.0.1:{apiserver.port}",
                                  "kubelet-metrics": f"{kubelet.node_ip}:{KUBELET_PORT}",
                                  "agent-http": f"localhost:{agent.port}"}
    ports = {"kubernetes-api": free_port(), "kubelet-metrics": free_port(), "agent-http": free_port()}
    cp.require_tunnel(ports)
    cp.wait_ports(set(ports.values()))
    assert get_through(ports["kubernetes-api"]) == "the API server"
    assert get_through(ports["kubelet-metrics"]) == "the kubelet"
    assert '"status":"healthy"' in get_through(ports["agent-http"])
    assert cp.violations() == []


def test_in_a_pod_a_configured_forward_wins_and_may_name_environment_variables(
        cp, agents, apiserver, kubelet, tmp_path):
    env, yaml = pod_environment(tmp_path, apiserver, kubelet)
    other = HelloServer("a configured API server")
    try:
        agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{other.port}",
                                    "kubelet-metrics": "${NODE_IP}:10250"}, env=env, extra_yaml=yaml)
        assert forward_log(agent) == {"kubernetes-api": f"127.0.0.1:{other.port}",
                                      "kubelet-metrics": f"{kubelet.node_ip}:{KUBELET_PORT}"}
        ports = {"kubernetes-api": free_port(), "kubelet-metrics": free_port()}
        cp.require_tunnel(ports)
        cp.wait_ports(set(ports.values()))
        assert get_through(ports["kubernetes-api"]) == "a configured API server"
        assert get_through(ports["kubelet-metrics"]) == "the kubelet"
    finally:
        other.stop()


def test_an_unset_variable_stops_the_agent_with_the_key_and_line(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text('pipeops:\n  api_url: ""\ntunnel:\n  forwards:\n    - name: kubelet-metrics\n'
                      '      local_addr: "${PIPEOPS_TEST_UNSET_NODE_IP}:10250"\n')
    env = {k: v for k, v in os.environ.items() if k != "PIPEOPS_TEST_UNSET_NODE_IP"}
    proc = subprocess.run([agent_binary(), "--config", str(config)], capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"pipeops-agent: {config}:6: tunnel.forwards[0].local_addr: "
                                   "${PIPEOPS_TEST_UNSET_NODE_IP}: the environment variable "
                                   "PIPEOPS_TEST_UNSET_NODE_IP is not set")
