"""End to end: with HTTP_PROXY set, the control-plane calls and the chisel tunnel both go
through a real CONNECT proxy (tinyproxy from Debian)."""

import os
import shutil
import subprocess
import time

import requests

from harness import free_port, wait_for


def test_control_plane_and_tunnel_through_a_connect_proxy(tmp_path, cp, hello, agents):
    tinyproxy = shutil.which("tinyproxy")
    assert tinyproxy, "tinyproxy is not installed (scripts/apt-packages.txt)"
    pport = free_port()
    conf = tmp_path / "tinyproxy.conf"
    # No ConnectPort line: CONNECT to any port is allowed.
    conf.write_text(f"Port {pport}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 50\nLogLevel Connect\n")
    log = open(tmp_path / "tinyproxy.log", "w")
    proxy = subprocess.Popen([tinyproxy, "-d", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: __import__("socket").create_connection(("127.0.0.1", pport), timeout=1), what="tinyproxy up")
        agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"},
                       env={"HTTP_PROXY": f"http://127.0.0.1:{pport}", "HTTPS_PROXY": f"http://127.0.0.1:{pport}"})
        remote = free_port()
        cp.require_tunnel({"kubernetes-api": remote})
        cp.wait_ports({remote})
        r = wait_for(lambda: requests.get(f"http://127.0.0.1:{remote}/", timeout=5), what="GET through the tunnel")
        assert r.text == "hello from behind the tunnel"
        log.flush()
        text = open(tmp_path / "tinyproxy.log").read()
        api_port = cp.api_url.rsplit(":", 1)[1]
        tunnel_port = cp.tunnel_url.rsplit(":", 1)[1].rstrip("/")
        assert f"127.0.0.1:{api_port}" in text, "control-plane calls did not use the proxy"
        assert f"127.0.0.1:{tunnel_port}" in text, "the tunnel did not use the proxy"
        assert agent.alive()
    finally:
        proxy.terminate()
        proxy.wait(10)
        log.close()
