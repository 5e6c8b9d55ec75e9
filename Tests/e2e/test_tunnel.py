"""End to end: the agent binary against the control-plane test double and a chisel-v3 server.

Tests taking `tunnel_cp` run twice: with the double's own chisel server (Python) and with
`pipeops-agent tunnel-server` (Swift) handed out by the double. Those taking `cp` need the
double's scripting of its server (garbage, probes) and run with the Python one only."""

import base64
import json
import os
import re
import socket
import threading
import time

import pytest

from harness import (SEED_FINGERPRINT, TOKEN, TUNNEL_PASSWORD, TUNNEL_USER, b64, echo_roundtrip, free_port,
                     pattern, up_tunnel, wait_for)


def test_registration_and_heartbeat_bodies_follow_the_contract(cp, hello, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}", "agent-http": "localhost:8080"})
    reg = cp.wait_requests("register")[0]
    hb = cp.wait_requests("heartbeat", count=2)[-1]
    body = reg["body"]
    assert reg["method"] == "POST" and reg["path"] == "/api/v1/clusters/agent/register"
    assert reg["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert reg["headers"]["User-Agent"].startswith("pipeops-agent/")
    assert body["name"] == "e2e-cluster"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["agent_id"])
    assert "cluster_id" not in body
    assert body["metadata"] == {"agent_mode": "vm-agent", "registration_mode": "fresh"}
    assert body["tunnel_port_config"] == {"kubernetes-api": hello.port, "agent-http": 8080}
    assert body["labels"]["environment"] == "test"
    assert body["labels"]["agent.pipeops.io/version"] == body["agent_version"]
    assert body["server_specs"]["cpu_cores"] >= 1 and body["server_specs"]["os"]
    hbody = hb["body"]
    assert hb["path"] == f"/api/v1/clusters/agent/{hbody['cluster_id']}/heartbeat"
    assert hbody["agent_id"] == body["agent_id"]
    assert hbody["tunnel_status"] == "idle"           # nothing requested a tunnel yet
    assert hbody["status"] == "healthy"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", hbody["timestamp"])
    assert hbody["metadata"]["version"] == body["agent_version"]
    assert cp.violations() == []
    # The state survives: a restart resumes with the same agent and cluster.
    saved = json.load(open(agent.state_path))
    assert saved["cluster_id"] == hbody["cluster_id"] and saved["agent_id"] == body["agent_id"]
    assert oct(os.stat(agent.state_path).st_mode & 0o777) == "0o600"
    assert agent.stop() == 0
    since = cp.get("/_test/requests")[-1]["seq"]
    again = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"}, port=agent.port, name="agent")
    reg2 = cp.wait_requests("register", since=since)[0]["body"]
    assert reg2["agent_id"] == body["agent_id"] and reg2["cluster_id"] == hbody["cluster_id"]
    assert reg2["metadata"]["registration_mode"] == "resume"
    cp.wait_requests("heartbeat", since=since)
    assert cp.violations() == []
    assert again.alive()


def test_required_tunnel_carries_http_to_the_forward_and_to_the_agent(tunnel_cp, hello, agents):
    cp = tunnel_cp
    port = free_port()   # the agent's own HTTP port, also the target of the agent-http forward
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}", "agent-http": f"127.0.0.1:{port}"}, port=port)
    k8s_port, http_port = free_port(), free_port()
    up_tunnel(cp, agent, {"kubernetes-api": k8s_port, "agent-http": http_port})
    r = wait_for(lambda: __import__("requests").get(f"http://127.0.0.1:{k8s_port}/", timeout=5), what="tunnelled GET")
    assert r.status_code == 200 and r.text == "hello from behind the tunnel"
    h = agent.get("/health", port=http_port)
    assert h.status_code == 200 and h.json()["status"] == "healthy"
    ready = agent.get("/ready").json()
    assert ready["checks"]["tunnel"]["ok"] is True
    # The next heartbeat reports the real state and the forward's counters.
    since = cp.get("/_test/requests")[-1]["seq"]
    hb = cp.wait_requests("heartbeat", since=since)[0]["body"]
    assert hb["tunnel_status"] == "connected"
    names = {f["name"]: f for f in hb["metadata"]["forwards"]}
    assert names["kubernetes-api"]["remote_port"] == k8s_port
    assert names["kubernetes-api"]["bytes_in"] > 0 and names["kubernetes-api"]["bytes_out"] > 0
    # The tunnel's SSH side looked like chisel's Go client.
    banners = cp.client_banners()
    assert banners and banners[-1] == "SSH-chisel-v3-client"
    assert cp.violations() == []


def test_fifty_mebibytes_each_way_sixteen_busy_and_two_hundred_concurrent_connections(tunnel_cp, echo, agents):
    cp = tunnel_cp
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{echo.port}"})
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    data = pattern(50 << 20, seed=1)
    back = echo_roundtrip(port, data)
    assert len(back) == len(data) and back == data

    # 16 busy connections at once: the agent's writes pile up (this once sent SSH packets twice,
    # and WebSocket messages over the server's 1 MiB limit).
    busy = {}

    def big(i):
        payload = pattern(4 << 20, seed=50 + i)
        busy[i] = echo_roundtrip(port, payload, timeout=120) == payload

    threads = [threading.Thread(target=big, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(busy) == 16 and all(busy.values()), f"{sum(busy.values())} of 16 correct"

    results = {}

    def one(i):
        payload = pattern(32 * 1024 + i, seed=100 + i)
        results[i] = echo_roundtrip(port, payload, timeout=60) == payload

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 200 and all(results.values()), f"{sum(results.values())} of 200 correct"
    assert agent.alive()


def test_idle_closes_and_a_changed_allocation_reconnects_on_the_new_ports(tunnel_cp, hello, agents):
    cp = tunnel_cp
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    p1 = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": p1})
    p2 = free_port()
    cp.require_tunnel({"kubernetes-api": p2})
    cp.wait_ports({p2})
    r = wait_for(lambda: __import__("requests").get(f"http://127.0.0.1:{p2}/", timeout=5), what="GET on the new port")
    assert r.text == "hello from behind the tunnel"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p1), timeout=2).recv(1) or (_ for _ in ()).throw(OSError("closed"))
    cp.post("/_test/tunnel-status", {"status": "IDLE", "forwards": []})
    if cp.kind == "python":
        wait_for(lambda: cp.get("/_test/tunnel/sessions") == [] or all(s["state"] == "closed" for s in cp.get("/_test/tunnel/sessions")),
                 what="tunnel sessions closed")
    else:
        cp.tunnel.wait_log(lambda l: l.get("msg") == "SSH disconnected", what="tunnel session closed")
    cp.wait_ports(set())
    since = cp.get("/_test/requests")[-1]["seq"]
    hb = cp.wait_requests("heartbeat", since=since)[0]["body"]
    assert hb["tunnel_status"] == "idle"
    assert agent.get("/ready").json()["checks"]["tunnel"]["ok"] is True


def test_tunnel_server_restart_is_survived_without_restarting_the_agent(tunnel_cp, hello, agents):
    cp = tunnel_cp
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    pid = agent.proc.pid
    cp.stop_tunnel()
    agent.wait_log(lambda l: l.get("msg") == "tunnel down; reconnecting", what="drop noticed")
    time.sleep(0.5)
    cp.start_tunnel()
    cp.wait_ports({port})
    r = wait_for(lambda: __import__("requests").get(f"http://127.0.0.1:{port}/", timeout=5), what="GET after restart")
    assert r.text == "hello from behind the tunnel"
    assert agent.alive() and agent.proc.pid == pid


def test_wrong_fingerprint_and_wrong_credentials_fail_clearly_and_retry(tunnel_cp, hello, agents):
    cp = tunnel_cp
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    port = free_port()
    wrong_fp = base64.b64encode(b"\x01" * 32).decode()
    cp.require_tunnel({"kubernetes-api": port}, server_fingerprint=wrong_fp)
    errs = lambda: [l for l in agent.logs() if l.get("msg") == "tunnel down; reconnecting" and SEED_FINGERPRINT in l.get("error", "")]
    wait_for(lambda: len(errs()) >= 2, what="two failed attempts naming the real fingerprint")
    assert wrong_fp in errs()[0]["error"]
    ready = agent.get("/ready")
    assert ready.status_code == 503 and SEED_FINGERPRINT in ready.json()["checks"]["tunnel"]["detail"]
    # Right key, wrong password.
    cp.require_tunnel({"kubernetes-api": port}, credentials=b64(f"{TUNNEL_USER}:wrong"), server_fingerprint=cp.fingerprint)
    auth = lambda: [l for l in agent.logs() if l.get("msg") == "tunnel down; reconnecting" and "unable to authenticate" in l.get("error", "")]
    wait_for(lambda: len(auth()) >= 2, what="two failed authentications")
    # Fixed: it comes up.
    cp.require_tunnel({"kubernetes-api": port}, credentials=b64(f"{TUNNEL_USER}:{TUNNEL_PASSWORD}"),
                      server_fingerprint=cp.fingerprint)
    cp.wait_ports({port})
    assert agent.alive()


def test_heartbeat_401_leads_to_registration_with_the_rotated_token(cp, hello, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    cp.wait_requests("heartbeat")
    new_token = "rotated-token-123"
    cp.post("/_test/rotate-token", {"token": new_token, "revoke_old": "now"})
    since = cp.get("/_test/requests")[-1]["seq"]
    reg = cp.wait_requests("register", since=since)[0]
    assert reg["body"]["metadata"]["registration_mode"] == "resume"
    hbs = cp.wait_requests("heartbeat", since=reg["seq"], count=2)
    assert all(h["headers"]["Authorization"] == f"Bearer {new_token}" for h in hbs)
    assert all(h["status"] == 200 for h in hbs)
    assert json.load(open(agent.state_path))["cluster_token"] == new_token
    assert new_token not in agent.log_text() and TOKEN not in agent.log_text().replace("test-token-", "")


def test_control_plane_down_at_start_keeps_the_agent_up_and_not_ready(hello, agents, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    agent = agents(dead, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    r = wait_for(lambda: [agent.get("/ready")], what="/ready answers")[0]   # a 503 Response is falsy
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["checks"]["registered"]["ok"] is False
    assert "ECONNREFUSED" in body["checks"]["registered"]["detail"] or "refused" in body["checks"]["registered"]["detail"]
    agent.wait_log(lambda l: l.get("msg") == "registration failed; retrying" and l.get("attempt") == "2", what="a second attempt")
    assert agent.alive()
    assert agent.get("/health").status_code == 200


def test_malformed_and_oversized_answers_and_websocket_garbage_do_not_hurt(cp, hello, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    cp.wait_requests("heartbeat")
    cp.post("/_test/fail", {"endpoint": "tunnel_status", "count": 1, "mode": "malformed"})
    agent.wait_log(lambda l: l.get("msg") == "tunnel status response is not valid JSON", what="malformed JSON noticed")
    cp.post("/_test/fail", {"endpoint": "tunnel_status", "count": 1, "mode": "oversized"})
    agent.wait_log(lambda l: l.get("msg") == "tunnel status poll failed" and "exceeds" in l.get("error", ""), what="oversized noticed")
    cp.post("/_test/fail", {"endpoint": "heartbeat", "count": 1, "mode": "oversized", "chunked": True})
    agent.wait_log(lambda l: l.get("msg") == "heartbeat failed" and "exceeds" in l.get("error", ""), what="oversized heartbeat answer")
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    cp.post("/_test/tunnel/garbage", {"data": "HTTP/1.1 200 OK\r\n\r\n\x00\xff garbage"})
    cp.post("/_test/tunnel/drop")
    agent.wait_log(lambda l: l.get("msg") == "tunnel down; reconnecting" and l.get("attempt") == "1", what="garbage rejected")
    cp.wait_ports({port})
    r = wait_for(lambda: __import__("requests").get(f"http://127.0.0.1:{port}/", timeout=5), what="GET after garbage")
    assert r.text == "hello from behind the tunnel"
    assert agent.alive()


def test_a_channel_to_an_unconfigured_target_is_refused(cp, hello, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    r = cp.post("/_test/tunnel/probe-channel", {"target": "127.0.0.1:22"})
    assert r["accepted"] is False and r["code"] == 1
    agent.wait_log(lambda l: l.get("msg") == "refused a tunnel channel to an unconfigured target" and l.get("target") == "127.0.0.1:22")
    ok = cp.post("/_test/tunnel/probe-channel", {"target": f"127.0.0.1:{hello.port}"})
    assert ok["accepted"] is True


def test_a_local_service_that_is_down_is_logged_once_per_interval_not_per_connection(tunnel_cp, agents):
    cp = tunnel_cp
    down = free_port()   # nothing listens there: every dial is refused
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{down}"})
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        try:
            assert s.recv(1) == b""   # the channel fails and the server closes the connection
        except ConnectionResetError:
            pass
        s.close()
    first = agent.wait_log(lambda l: l.get("msg") == "cannot reach the forward's local address", what="dial failure logged")
    assert first["forward"] == "kubernetes-api" and first["target"] == f"127.0.0.1:{down}" and "refused" in first["error"].lower()
    # The rest are counted into one line at the end of the interval (10 s), not logged one by one.
    second = agent.wait_log(lambda l: l.get("msg") == "cannot reach the forward's local address"
                            and l.get("failures") not in (None, "1"), timeout=30, what="the interval's count")
    lines = [l for l in agent.logs() if l.get("msg") == "cannot reach the forward's local address"]
    assert len(lines) == 2, lines
    assert int(first["failures"]) + int(second["failures"]) == 30


def test_inactivity_closes_the_tunnel_and_the_next_poll_reopens_it(tunnel_cp, hello, agents):
    cp = tunnel_cp
    # Only tunnel bytes count: the agent's own /health, asked directly, does not keep it open.
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"},
                   tunnel_yaml="  inactivity_timeout: 2s\n", name="idle-agent")
    port = free_port()
    up_tunnel(cp, agent, {"kubernetes-api": port})
    for _ in range(5):
        assert agent.get("/health").status_code == 200
    closed = agent.wait_log(lambda l: l.get("msg", "").startswith("no tunnel traffic for 2s"), what="inactivity close")
    reopened = agent.wait_log(lambda l: l.get("msg") == "tunnel connected" and l["time"] > closed["time"], what="reopened by the poll")
    assert reopened
    r = wait_for(lambda: __import__("requests").get(f"http://127.0.0.1:{port}/", timeout=5), what="GET after reopening")
    assert r.text == "hello from behind the tunnel"


def test_a_long_transfer_on_one_connection_is_activity_and_is_counted_while_open(tunnel_cp, echo, agents):
    cp = tunnel_cp
    # One connection stays open and moves a little data every 0.3 s for longer than the
    # inactivity timeout: the tunnel must stay up, and heartbeats count the open connection's bytes.
    agent = agents(cp.api_url, {"echo": f"127.0.0.1:{echo.port}"}, tunnel_yaml="  inactivity_timeout: 2s\n", name="busy-agent")
    port = free_port()
    up_tunnel(cp, agent, {"echo": port})
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    for i in range(17):   # about 5 s, well past the 2 s timeout
        chunk = bytes([i]) * 1000
        s.sendall(chunk)
        got = b""
        while len(got) < len(chunk):
            more = s.recv(len(chunk) - len(got))
            assert more, f"the tunnel closed the connection after {sent} bytes, {i * 0.3:.1f} s in"
            got += more
        assert got == chunk
        sent += len(chunk)
        time.sleep(0.3)
    since = cp.requests_for("heartbeat")[-1]["seq"]
    hb = cp.wait_requests("heartbeat", since=since)[0]["body"]
    s.close()
    assert not [l for l in agent.logs() if l.get("msg", "").startswith("no tunnel traffic")], "closed while data was flowing"
    fw = {f["name"]: f for f in hb["metadata"]["forwards"]}["echo"]
    assert fw["active_connections"] == 1
    assert fw["bytes_in"] >= sent and fw["bytes_out"] >= sent, fw


def test_an_agent_without_a_chisel_tunnel_does_not_poll_the_tunnel_status(cp, hello, agents):
    since = cp.requests_for("heartbeat")[-1]["seq"] if cp.requests_for("heartbeat") else 0
    polls_before = len(cp.requests_for("tunnel_status"))
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"}, tunnel_enabled=False, name="no-tunnel-agent")
    cp.wait_requests("heartbeat", since=since, count=3)
    assert len(cp.requests_for("tunnel_status")) == polls_before, "polled with the tunnel disabled"
