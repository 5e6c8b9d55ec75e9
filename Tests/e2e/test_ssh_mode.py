"""End to end: `tunnel.mode: ssh` against a real OpenSSH sshd, standalone (no control plane)."""

import re

import requests

from harness import free_port, wait_for
from sshd import PASSWORD, SSHD, USER


def ssh_yaml(port, fingerprint=""):
    fp = f'\n    host_key_fingerprint: "{fingerprint}"' if fingerprint else ""
    return f"""  mode: ssh
  ssh:
    server: "127.0.0.1:{port}"
    user: "{USER}"
    password: "{PASSWORD}"{fp}
"""


def start_agent(agents, sshd_port, hello_port, remote_port, fingerprint=""):
    """Standalone (no control plane, no token): SSH mode with one forward to the hello service."""
    return agents("", {"kubernetes-api": {"local_addr": f"127.0.0.1:{hello_port}", "remote_port": remote_port}},
                  tunnel_yaml=ssh_yaml(sshd_port, fingerprint), token=None, name="ssh-agent")


def test_ssh_mode_forwards_through_sshd_and_survives_a_restart(tmp_path, hello, agents):
    sshd_port = free_port()
    sshd = SSHD(str(tmp_path), sshd_port)
    try:
        remote = free_port()
        agent = start_agent(agents, sshd_port, hello.port, remote, fingerprint=sshd.fingerprint)
        agent.wait_log(lambda l: l.get("msg") == "ssh reverse forward listening" and l.get("remote") == f"127.0.0.1:{remote}",
                       what="forward bound")
        r = wait_for(lambda: requests.get(f"http://127.0.0.1:{remote}/", timeout=5), what="GET through sshd")
        assert r.text == "hello from behind the tunnel"
        assert agent.get("/ready").json()["checks"]["tunnel"]["ok"] is True
        sshd.stop()
        agent.wait_log(lambda l: l.get("msg") == "tunnel down; reconnecting", what="drop noticed")
        sshd = SSHD(str(tmp_path), sshd_port)
        r = wait_for(lambda: requests.get(f"http://127.0.0.1:{remote}/", timeout=5), timeout=60, what="GET after sshd restart")
        assert r.text == "hello from behind the tunnel"
        assert agent.alive()
    finally:
        sshd.stop()


def test_ssh_mode_port_zero_and_a_wrong_host_key(tmp_path, hello, agents):
    sshd_port = free_port()
    sshd = SSHD(str(tmp_path), sshd_port)
    try:
        agent = start_agent(agents, sshd_port, hello.port, 0, fingerprint="SHA256:" + "A" * 43)
        err = agent.wait_log(lambda l: l.get("msg") == "tunnel down; reconnecting", what="host key refused")
        assert sshd.fingerprint[len("SHA256:"):] in err["error"], err
        agent.stop()
        agent = start_agent(agents, sshd_port, hello.port, 0)   # no fingerprint: accepted with a warning
        agent.wait_log(lambda l: "host key not checked" in l.get("msg", "") and l.get("level") == "warning", what="unverified key warning")
        line = agent.wait_log(lambda l: l.get("msg") == "ssh reverse forward listening", what="forward bound")
        port = int(re.search(r":(\d+)$", line["remote"]).group(1))
        assert port > 0
        r = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5), what="GET on the server-chosen port")
        assert r.text == "hello from behind the tunnel"
    finally:
        sshd.stop()
