"""End to end: the agent's access rules, WebSocket hub (`/ws`) and Server-Sent Events, driven by
real clients (python `websockets`, `requests` streaming, raw sockets) against the agent binary."""

import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from harness import TOKEN, free_port, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def standalone(agents, extra_yaml="", env=None):
    """An agent without a control plane whose API token is TOKEN."""
    return agents("", {"agent-http": "127.0.0.1:1"}, tunnel_enabled=False,
                  extra_yaml="server:\n  api_token: \"" + TOKEN + "\"\n" + extra_yaml, env=env)


def ws_connect(stack, agent, **kw):
    """A hub client closed with `stack`."""
    return stack.enter_context(connect(ws_url(agent), additional_headers=AUTH, **kw))


def ws_url(agent, path="/ws"):
    return f"ws://127.0.0.1:{agent.port}{path}"


def recv_json(ws, timeout=10):
    return json.loads(ws.recv(timeout=timeout))


def recv_type(ws, wanted, timeout=15):
    """The next message of type `wanted`, skipping pushes of other types."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = recv_json(ws, timeout=max(0.1, end - time.monotonic()))
        if m["type"] == wanted:
            return m
    raise AssertionError(f"no {wanted} message within {timeout}s")


def wait_up(agent):
    wait_for(lambda: agent.get("/health").status_code == 200, what="agent up")


# MARK: access

def test_probes_are_open_and_everything_else_needs_the_token(agents):
    agent = standalone(agents)
    wait_up(agent)
    base = f"http://127.0.0.1:{agent.port}"
    for path in ("/health", "/ready", "/version"):
        assert requests.get(base + path, timeout=5).status_code == 200, path
    for path in ("/api/health/detailed", "/api/realtime/events", "/api/realtime/logs", "/ws", "/dashboard", "/api/nothing"):
        r = requests.get(base + path, timeout=5)
        assert r.status_code == 401, (path, r.status_code)
        assert r.json()["status"] == 401 and "token" in r.json()["error"]
        r = requests.get(base + path, headers={"Authorization": "Bearer wrong-token"}, timeout=5)
        assert r.status_code == 401 and r.json()["error"] == "wrong API token", path
    r = requests.get(base + "/api/health/detailed", headers=AUTH, timeout=5)
    assert r.status_code == 200
    d = r.json()
    assert d["agent"]["cluster_name"] == "e2e-cluster" and d["registration"]["mode"] == "standalone"
    assert d["tunnel"]["state"] == "disabled" and d["health"]["status"] == "ready"
    assert d["kubernetes"]["available"] is False
    # JSON errors: unknown path 404, wrong method 405 with Allow (the probes too).
    r = requests.get(base + "/api/nothing", headers=AUTH, timeout=5)
    assert r.status_code == 404 and r.json()["status"] == 404
    r = requests.post(base + "/health", timeout=5)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def test_a_browser_token_becomes_an_httponly_cookie(agents):
    agent = standalone(agents)
    wait_up(agent)
    base = f"http://127.0.0.1:{agent.port}"
    r = requests.get(base + f"/api/health/detailed?token={TOKEN}&x=1", headers={"Accept": "text/html"},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 303
    assert r.headers["Location"] == "/api/health/detailed?x=1"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"pipeops_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    r = requests.get(base + "/api/health/detailed", headers={"Cookie": f"pipeops_token={TOKEN}"}, timeout=5)
    assert r.status_code == 200
    assert requests.get(base + "/api/health/detailed", headers={"Cookie": "pipeops_token=nope"}, timeout=5).status_code == 401
    # A non-browser client may use ?token= directly.
    assert requests.get(base + f"/api/health/detailed?token={TOKEN}", timeout=5).status_code == 200


def test_rate_limit_per_address_spares_the_probes(agents):
    agent = standalone(agents, extra_yaml="  rate_limit: 5\n")
    wait_up(agent)
    base = f"http://127.0.0.1:{agent.port}"
    with requests.Session() as s:
        codes = [s.get(base + "/api/health/detailed", headers=AUTH, timeout=5).status_code for _ in range(30)]
        assert codes.count(429) >= 10 and codes[0] == 200, codes
        r = s.get(base + "/api/health/detailed", headers=AUTH, timeout=5)
        if r.status_code == 429:
            assert r.headers["Retry-After"] == "1" and r.json()["status"] == 429
        assert all(s.get(base + "/health", timeout=5).status_code == 200 for _ in range(30))
    time.sleep(1.2)
    assert requests.get(base + "/api/health/detailed", headers=AUTH, timeout=5).status_code == 200


def test_websocket_and_sse_can_be_switched_off_by_environment(agents):
    agent = standalone(agents, env={"PIPEOPS_ENABLE_WEBSOCKET": "false", "PIPEOPS_ENABLE_SSE": "false"})
    wait_up(agent)
    base = f"http://127.0.0.1:{agent.port}"
    for path in ("/ws", "/api/realtime/events", "/api/realtime/logs"):
        assert requests.get(base + path, headers=AUTH, timeout=5).status_code == 404, path


# MARK: the hub

def test_hub_answers_every_command_and_survives_bad_input(agents):
    agent = standalone(agents)
    wait_up(agent)
    with connect(ws_url(agent), additional_headers=AUTH, max_size=None) as ws:
        first = recv_json(ws)
        assert first["type"] == "status" and first["data"]["agent"]["cluster_name"] == "e2e-cluster"
        assert first["data"]["runtime"] is not None and first["timestamp"].endswith("Z")
        ws.send(json.dumps({"type": "ping", "id": "p1"}))
        m = recv_type(ws, "pong")
        assert m["id"] == "p1"
        ws.send(json.dumps({"type": "get_status", "id": 7}))
        m = recv_type(ws, "status")
        assert m["id"] == "7" and m["data"]["health"]["status"] == "ready"
        ws.send(json.dumps({"type": "get_metrics"}))
        m = recv_type(ws, "metrics")
        assert "runtime" in m["data"] and m["data"]["tunnel"]["state"] == "disabled"
        ws.send("{not json")
        m = recv_type(ws, "error")
        assert "invalid JSON" in m["data"]["message"]
        ws.send(json.dumps({"type": "launch_rockets"}))
        m = recv_type(ws, "error")
        assert "unknown message type" in m["data"]["message"]
        ws.send(json.dumps({"type": "subscribe", "data": {"topics": ["weather"]}}))
        assert "unknown topic" in recv_type(ws, "error")["data"]["message"]
        ws.send(json.dumps({"type": "subscribe", "data": {"topics": ["events", "logs"]}, "id": "s"}))
        m = recv_type(ws, "subscribed")
        assert m["data"]["topics"] == ["events", "logs"] and m["id"] == "s"
        ws.send(json.dumps({"type": "unsubscribe", "data": {"topics": ["logs"]}}))
        assert recv_type(ws, "unsubscribed")["data"]["topics"] == ["events"]
        ws.send(json.dumps({"type": "logs", "data": {"namespace": "default", "pod": "web-1"}}))
        assert "Kubernetes" in recv_type(ws, "error")["data"]["message"]
        # Still open after all of that.
        ws.send(json.dumps({"type": "ping"}))
        recv_type(ws, "pong")
        # Over 64 KiB: closed with 1009.
        ws.send("x" * (65 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_realtime_connection_limit_gives_503(agents):
    agent = standalone(agents, extra_yaml="realtime:\n  max_connections: 2\n")
    wait_up(agent)
    stack = contextlib.ExitStack()
    a = ws_connect(stack, agent)
    sse = requests.get(f"http://127.0.0.1:{agent.port}/api/realtime/events", headers=AUTH, stream=True, timeout=10)
    assert sse.status_code == 200
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(agent), additional_headers=AUTH)
    assert refused.value.response.status_code == 503
    r = requests.get(f"http://127.0.0.1:{agent.port}/api/realtime/events", headers=AUTH, timeout=10)
    assert r.status_code == 503 and "max_connections" in r.json()["error"]
    stack.close()
    sse.close()
    # The places come back when clients leave.
    with contextlib.ExitStack() as again:
        wait_for(lambda: ws_connect(again, agent), what="a place freed")


def raw_ws_client(port, rcvbuf=4096):
    """A WebSocket client on a bare socket that we can stop reading from."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode())
    return s


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    head = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + struct.pack("!H", len(payload)))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_client_that_stops_reading_is_closed_with_1008_and_a_fast_one_keeps_its_pushes(agents):
    agent = standalone(agents)
    wait_up(agent)
    stack = contextlib.ExitStack()
    fast = ws_connect(stack, agent, max_size=None)
    recv_type(fast, "status")
    fast.send(json.dumps({"type": "subscribe", "data": {"topics": ["logs"]}}))
    recv_type(fast, "subscribed")
    slow = raw_ws_client(agent.port)
    frame = masked_text(b'{"type":"get_status"}')
    slow.settimeout(30)
    # Ask for status over and over and read none of the answers.
    for _ in range(4000):
        try:
            slow.sendall(frame)
        except OSError:
            break
    # The fast client hears (as a pushed log line) that the slow one was cut off.
    end = time.monotonic() + 30
    warned = None
    while time.monotonic() < end and warned is None:
        m = recv_json(fast, timeout=30)
        if m["type"] == "log" and "does not read" in m["data"]["message"]:
            warned = m
    assert warned is not None and warned["data"]["level"] == "warning"
    # Now the slow client reads: what was queued, then a close frame with 1008, then EOF.
    data = bytearray()
    try:
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            data.extend(chunk)
    except OSError:
        pass
    slow.close()
    close_at = data.rfind(b"\x88")
    assert close_at > 0, "no close frame"
    code = struct.unpack("!H", bytes(data[close_at + 2:close_at + 4]))[0]
    assert code == 1008
    fast.send(json.dumps({"type": "ping"}))
    recv_type(fast, "pong")
    stack.close()
    assert agent.alive()


# MARK: events and logs over SSE and the hub

class SSEReader:
    """Reads an event stream in a thread: a list of (id, event, data) tuples."""

    def __init__(self, url, headers):
        self.resp = requests.get(url, headers=headers, stream=True, timeout=(5, 60))
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        self.events = []
        self.comments = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        ev = {}
        try:
            for raw in self.resp.iter_lines(decode_unicode=True):
                if raw == "":
                    if "data" in ev:
                        with self.lock:
                            self.events.append((ev.get("id"), ev.get("event"), json.loads(ev["data"])))
                    ev = {}
                elif raw.startswith(":"):
                    self.comments.append(raw)
                else:
                    k, _, v = raw.partition(": ")
                    ev[k] = v
        except Exception:
            pass

    def named(self, name):
        with self.lock:
            return [e for e in self.events if e[1] == name]

    def wait(self, name, pred=lambda d: True, timeout=30):
        return wait_for(lambda: next((e for e in self.named(name) if pred(e[2])), None), timeout, f"SSE event {name}")

    def close(self):
        self.resp.close()


def test_events_arrive_over_sse_and_the_hub_and_replay_from_last_event_id(cp, hello, agents):
    port = free_port()
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"}, port=port)
    wait_up(agent)
    events_url = f"http://127.0.0.1:{agent.port}/api/realtime/events"
    sse = SSEReader(events_url, AUTH)
    sse.wait("connected")
    stack = contextlib.ExitStack()
    ws = ws_connect(stack, agent, max_size=None)
    recv_type(ws, "status")
    ws.send(json.dumps({"type": "subscribe", "data": {"topics": ["events"]}}))
    recv_type(ws, "subscribed")
    remote = free_port()
    cp.require_tunnel({"kubernetes-api": remote})
    cp.wait_ports({remote})
    sse.wait("tunnel_state", lambda d: d["state"] == "connected")
    r = wait_for(lambda: requests.get(f"http://127.0.0.1:{remote}/", timeout=5), what="tunnelled GET")
    assert r.status_code == 200
    opened = sse.wait("forward_opened", lambda d: d["forward"] == "kubernetes-api")
    closed = sse.wait("forward_closed", lambda d: d["forward"] == "kubernetes-api")
    assert opened[2]["remote_port"] == remote
    assert closed[2]["bytes_out"] > 0 and closed[2]["bytes_in"] > 0
    # The hub got the same events, with the same ids.
    seen = {}
    end = time.monotonic() + 20
    while time.monotonic() < end and not {"forward_opened", "forward_closed"} <= set(seen):
        m = recv_json(ws, timeout=20)
        if m["type"] == "event":
            seen[m["data"]["event"]] = m["data"]
    assert seen["forward_opened"]["id"] == int(opened[0])
    assert seen["forward_closed"]["data"]["forward"] == "kubernetes-api"
    stack.close()
    # Reconnect with Last-Event-ID: exactly the events after it, then the live ones.
    with sse.lock:
        ids = [int(e[0]) for e in sse.events if e[0] is not None]
    sse.close()
    cut = ids[len(ids) // 2 - 1] if len(ids) > 1 else ids[0]
    missed_now = [i for i in ids if i > cut]
    again = SSEReader(events_url, dict(AUTH, **{"Last-Event-ID": str(cut)}))
    hello_ev = again.wait("connected")
    assert hello_ev[2]["replayed"] >= len(missed_now) and hello_ev[2]["missed_events_lost"] is False
    wait_for(lambda: len([e for e in again.events if e[0]]) >= len(missed_now), what="replayed events")
    with again.lock:
        replayed = [int(e[0]) for e in again.events if e[0]][:len(missed_now)]
    assert replayed == missed_now
    again.close()


def test_the_log_stream_shows_lines_logged_after_the_client_connected(cp, hello, agents):
    agent = agents(cp.api_url, {"kubernetes-api": f"127.0.0.1:{hello.port}"})
    wait_up(agent)
    logs = SSEReader(f"http://127.0.0.1:{agent.port}/api/realtime/logs", AUTH)
    logs.wait("connected")
    connected_at = time.time()
    remote = free_port()
    cp.require_tunnel({"kubernetes-api": remote})
    cp.wait_ports({remote})
    line = logs.wait("log", lambda d: d["message"] == "tunnel connected")
    assert line[2]["source"] == "agent" and line[2]["level"] == "info" and line[2]["component"] == "tunnel"
    logs.close()
    assert connected_at > 0
