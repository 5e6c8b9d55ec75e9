#!/usr/bin/env python3
"""Self-test of the control-plane test double: starts server.py on free loopback ports, drives
the API with aiohttp and the tunnel with chisel_client.py, and prints
`selftest: N passed, M failed` (exit status 0 only when nothing failed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiohttp  # noqa: E402

from chisel_client import ChiselClient, go_config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "selftest-token"
HDRS = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "pipeops-agent/0.1.0",
        "Accept": "application/json"}
SEED_FP = "r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ="


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, cond: bool, detail: object = "") -> bool:
        if cond:
            self.passed += 1
            print(f"  ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"  FAIL {name}: {detail}", flush=True)
        return cond


def register_body(agent_id: str, cluster_id: str | None = None) -> dict:
    body = {"agent_id": agent_id, "name": "selftest", "hostname": "node-1",
            "agent_version": "0.1.0", "k8s_version": "v1.30.1",
            "labels": {"env": "test", "hostname": "node-1", "agent.pipeops.io/version": "0.1.0"},
            "tunnel_port_config": {"kubernetes-api": 6443},
            "server_specs": {"cpu_cores": 2, "memory_gb": 3.8, "disk_gb": 40, "os": "Debian 12"},
            "metadata": {"agent_mode": "vm-agent",
                         "registration_mode": "resume" if cluster_id else "fresh"}}
    if cluster_id:
        body["cluster_id"] = cluster_id
    return body


def heartbeat_body(cluster_id: str, agent_id: str) -> dict:
    return {"cluster_id": cluster_id, "agent_id": agent_id, "status": "healthy",
            "tunnel_status": "idle", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metadata": {"version": "0.1.0", "uptime_seconds": 5, "k8s_nodes": 1, "k8s_pods": 3,
                         "forwards": [{"name": "kubernetes-api", "remote_port": 8000,
                                       "active_connections": 0, "bytes_in": 0, "bytes_out": 0}]}}


class SelfTest:
    def __init__(self, ready: dict, r: Results):
        self.api = ready["api_url"]
        self.ctl = ready["control_url"]
        self.tunnel = ready["tunnel_url"]
        self.fp = ready["fingerprint"]
        self.r = r
        self.http = aiohttp.ClientSession()

    async def call(self, method: str, path: str, body: object = None, headers: dict | None = None,
                   token: str | None = None) -> tuple[int, bytes]:
        hdrs = dict(HDRS if headers is None else headers)
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        async with self.http.request(method, self.api + path, data=data, headers=hdrs) as resp:
            return resp.status, await resp.read()

    async def ctl_call(self, method: str, path: str, body: object = None) -> object:
        async with self.http.request(method, self.ctl + path, json=body) as resp:
            text = await resp.read()
            assert resp.status == 200, (path, resp.status, text)
            return json.loads(text)

    # -- API -------------------------------------------------------------------------------
    async def test_api(self) -> None:
        r = self.r
        async with self.http.get(self.api + "/health") as resp:
            r.check("GET /health answers 200", resp.status == 200, resp.status)
        await self.ctl_call("POST", "/reset")
        status, raw = await self.call("POST", "/api/v1/clusters/agent/register", register_body("agent-1"))
        reg = json.loads(raw)
        cid = reg.get("cluster_id", "")
        r.check("register (fresh) -> 201 with cluster_id", status == 201 and cid.startswith("cl-"),
                (status, raw[:200]))
        violations = await self.ctl_call("GET", "/violations")
        r.check("a contract-conforming register records no violation", violations == [], violations)

        status, _ = await self.call("POST", "/api/v1/clusters/agent/register", register_body("agent-1"),
                                    token="wrong")
        r.check("register with a wrong token -> 401", status == 401, status)

        bad = register_body("agent-2")
        bad["agentVersion"] = bad.pop("agent_version")
        bad["server_specs"]["cpu_cores"] = "2"
        bad_headers = {k: v for k, v in HDRS.items() if k != "User-Agent"}
        await self.ctl_call("DELETE", "/violations")
        await self.call("POST", "/api/v1/clusters/agent/register", bad, headers=bad_headers)
        fields = {v["field"] for v in await self.ctl_call("GET", "/violations")}
        r.check("validation flags camelCase, missing field, wrong type, bad User-Agent",
                {"agentVersion", "agent_version", "server_specs.cpu_cores",
                 "header User-Agent"} <= fields, fields)

        await self.ctl_call("DELETE", "/violations")
        hb = f"/api/v1/clusters/agent/{cid}/heartbeat"
        status, _ = await self.call("POST", hb, heartbeat_body(cid, "agent-1"))
        r.check("heartbeat -> 200 and no violation",
                status == 200 and await self.ctl_call("GET", "/violations") == [], status)
        status, _ = await self.call("POST", "/api/v1/clusters/agent/cl-nope/heartbeat",
                                    heartbeat_body("cl-nope", "agent-1"))
        r.check("heartbeat for an unknown cluster -> 404", status == 404, status)

        status, raw = await self.call("POST", "/api/v1/clusters/agent/register",
                                      register_body("agent-1", cid))
        r.check("register resume with a known cluster_id -> 409 carrying it",
                status == 409 and json.loads(raw).get("cluster_id") == cid, (status, raw[:200]))

        await self.ctl_call("POST", "/fail", {"endpoint": "heartbeat", "count": 2, "status": 401})
        statuses = [(await self.call("POST", hb, heartbeat_body(cid, "agent-1")))[0] for _ in range(3)]
        r.check("scripted failures: next 2 heartbeats -> 401, then 200", statuses == [401, 401, 200],
                statuses)

        await self.ctl_call("POST", "/fail", {"endpoint": "register", "mode": "malformed"})
        status, raw = await self.call("POST", "/api/v1/clusters/agent/register", register_body("agent-3"))
        try:
            json.loads(raw)
            malformed = False
        except ValueError:
            malformed = True
        r.check("scripted malformed JSON body", status == 200 and malformed, raw[:80])

        await self.ctl_call("POST", "/fail", {"endpoint": "tunnel_status", "mode": "oversized"})
        status, raw = await self.call("GET", "/api/agents/agent-1/tunnel/status")
        r.check("scripted oversized body (> 1 MiB)", len(raw) > (1 << 20), len(raw))

        await self.ctl_call("POST", "/fail", {"endpoint": "register", "mode": "delay", "delay": 0.3,
                                              "status": 503})
        t0 = time.monotonic()
        status, _ = await self.call("POST", "/api/v1/clusters/agent/register", register_body("agent-3"))
        r.check("scripted delayed 503", status == 503 and time.monotonic() - t0 >= 0.3, status)

        new = (await self.ctl_call("POST", "/rotate-token", {"revoke_old": "now"}))["token"]
        status, _ = await self.call("POST", hb, heartbeat_body(cid, "agent-1"))
        status2, raw = await self.call("POST", "/api/v1/clusters/agent/register",
                                       register_body("agent-1", cid))
        status3, _ = await self.call("POST", hb, heartbeat_body(cid, "agent-1"), token=new)
        r.check("token rotation: old token 401 on heartbeat, register delivers the new one",
                status == 401 and json.loads(raw).get("token") == new and status3 == 200,
                (status, raw[:200], status3))
        await self.ctl_call("POST", "/tokens", {"tokens": [TOKEN]})

        status, raw = await self.call("GET", "/api/agents/agent-1/tunnel/status")
        ts = json.loads(raw)
        r.check("tunnel status defaults (IDLE, live fingerprint and address)",
                status == 200 and ts["status"] == "IDLE" and ts["server_fingerprint"] == self.fp
                and len(ts["server_fingerprint"]) == 44 and ts["tunnel_server_addr"] == self.tunnel,
                ts)
        await self.ctl_call("POST", "/tunnel-status", {
            "agent_id": "agent-1", "status": "REQUIRED", "poll_frequency": 2,
            "forwards": [{"name": "kubernetes-api", "remote_port": 18000}]})
        _, raw = await self.call("GET", "/api/agents/agent-1/tunnel/status")
        ts = json.loads(raw)
        r.check("scripted tunnel status REQUIRED with forwards",
                ts["status"] == "REQUIRED" and ts["forwards"][0]["remote_port"] == 18000
                and ts["poll_frequency"] == 2, ts)

        await self.ctl_call("DELETE", "/violations")
        await self.call("POST", "/api//v1/clusters/agent/register", register_body("agent-1"))
        vs = await self.ctl_call("GET", "/violations")
        r.check("a wrong path (double slash) is a violation", any(v["field"] == "path" for v in vs), vs)
        reqs = await self.ctl_call("GET", f"/requests?path={hb}")
        r.check("requests are recorded with headers and parsed bodies",
                len(reqs) >= 5 and reqs[-1]["body"]["agent_id"] == "agent-1"
                and reqs[-1]["headers"]["User-Agent"] == "pipeops-agent/0.1.0", len(reqs))
        await self.ctl_call("DELETE", "/violations")

    # -- tunnel ----------------------------------------------------------------------------
    async def raw_http(self, request: bytes) -> bytes:
        host, port = self.tunnel[7:].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        data = b""
        try:
            while len(data) < 4096:
                chunk = await asyncio.wait_for(reader.read(4096), 2)
                if not chunk:
                    break
                data += chunk
        except asyncio.TimeoutError:
            pass
        writer.close()
        return data

    async def test_tunnel_http(self) -> None:
        r = self.r
        key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        resp = await self.raw_http(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                   b"Upgrade: websocket\r\n" + key +
                                   b"Sec-WebSocket-Protocol: chisel-v3\r\n\r\n")
        head = resp.split(b"\r\n\r\n", 1)[0]
        r.check("101 has exactly Upgrade/Connection/Accept, no subprotocol echo",
                head.startswith(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                b"Connection: Upgrade\r\nSec-WebSocket-Accept: ")
                and head.count(b"\r\n") == 3, head)
        r.check("server banner arrives as one binary message",
                resp.split(b"\r\n\r\n", 1)[1][:24] == b"\x82\x16SSH-chisel-v3-server\r\n", resp[-40:])
        resp = await self.raw_http(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                   b"Upgrade: websocket\r\n" + key +
                                   b"Sec-WebSocket-Protocol: chisel-v3, other\r\n\r\n")
        r.check("other subprotocol falls through to 404 Not found",
                resp.startswith(b"HTTP/1.1 404") and resp.endswith(b"\r\n\r\nNot found"), resp)
        resp = await self.raw_http(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        r.check("/health -> OK\\n", resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"\r\n\r\nOK\n"),
                resp)

    async def echo_server(self) -> tuple[asyncio.AbstractServer, int]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    async def test_tunnel(self) -> None:
        r = self.r
        echo, echo_port = await self.echo_server()
        bind_port = free_port()

        bad = ChiselClient()
        try:
            await bad.connect(self.tunnel, "u", "wrong")
            r.check("wrong password is refused", False, "authenticated")
        except Exception as exc:
            r.check("wrong password is refused", True, exc)
        bad.close()

        c = ChiselClient()
        await c.connect(self.tunnel, "u", "p", expect_fingerprint=self.fp)
        r.check("client authenticates; host key fingerprint = chisel's --key testseed",
                c.fingerprint == SEED_FP == self.fp, c.fingerprint)
        r.check("client saw no Sec-WebSocket-Protocol in the 101",
                not any(k.lower() == "sec-websocket-protocol" for k in c.response_headers),
                c.response_headers)
        cfg = go_config([{"LocalHost": "127.0.0.1", "LocalPort": str(bind_port),
                          "RemotePort": str(echo_port)}])
        ok, err = await c.send_config(cfg)
        r.check("config accepted (empty reply data)", ok, err)
        vs = await self.ctl_call("GET", "/violations")
        r.check("the Go-shaped config and client banner cause no violation", vs == [], vs)
        ports = []
        for _ in range(50):
            ports = await self.ctl_call("GET", "/tunnel/ports")
            if ports:
                break
            await asyncio.sleep(0.05)
        r.check("bound reverse port is listed", [p["local_port"] for p in ports] == [bind_port], ports)

        reader, writer = await asyncio.open_connection("127.0.0.1", bind_port)
        payload = os.urandom(300_000)
        writer.write(payload)
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        r.check("300 KB echoed through the reverse port", got == payload, len(got))
        r.check("channel extra data is the raw target", c.stats.get("targets") == [f"127.0.0.1:{echo_port}"],
                c.stats.get("targets"))
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), 5)
        r.check("half-close closes the whole pipe (EOF back, nothing more)", rest == b"", rest)
        writer.close()

        ok, data = await c.request(b"ping")
        r.check("client ping -> REQUEST_SUCCESS + raw 'pong'", ok and data == b"pong", (ok, data))
        sessions: list = []
        for _ in range(100):  # the server pings every 1 s (--keepalive 1); wait up to 10 s
            sessions = await self.ctl_call("GET", "/tunnel/sessions")
            if c.stats.get("server_pings", 0) >= 1 and sessions and sessions[0]["pongs"] >= 1:
                break
            await asyncio.sleep(0.1)
        r.check("server pings every --keepalive and gets pong",
                c.stats.get("server_pings", 0) >= 1 and sessions and sessions[0]["pongs"] >= 1,
                (c.stats, sessions[0]["pongs"] if sessions else None))

        await self.ctl_call("POST", "/tunnel/freeze", {"frozen": True})
        try:
            await c.request(b"ping", timeout=0.5)
            stalled = False
        except asyncio.TimeoutError:
            stalled = True
        await self.ctl_call("POST", "/tunnel/freeze", {"frozen": False})
        ok, data = await c.request(b"ping")
        r.check("freeze stalls the session (ping unanswered), thaw resumes it",
                stalled and ok and data == b"pong", (stalled, ok, data))

        c2 = ChiselClient()
        await c2.connect(self.tunnel, "u", "p")
        ok, err = await c2.send_config(cfg)
        r.check("second session on a held port -> 'Server cannot listen'",
                not ok and err == f"server: Server cannot listen on R:127.0.0.1:{bind_port}=>{echo_port}",
                err)
        c2.close()

        c3 = ChiselClient()
        await c3.connect(self.tunnel, "u", "p")
        ok, err = await c3.send_config(b"{not json")
        r.check("non-JSON config -> 'server: invalid config'", not ok and err == "server: invalid config", err)
        c3.close()

        c4 = ChiselClient()
        await c4.connect(self.tunnel, "u", "p")
        ok, data = await c4.request(b"ping")
        r.check("ping before config -> failure 'server: expecting config request'",
                not ok and data == b"server: expecting config request", (ok, data))
        c4.close()

        c5 = ChiselClient()
        await c5.connect(self.tunnel, "u", "p")
        ok, err = await c5.send_config(go_config([{"LocalHost": "127.0.0.1", "LocalPort": "1",
                                                   "LocalProto": "", "RemotePort": "2"}]))
        r.check("empty LocalProto -> cannot listen", err == "server: Server cannot listen on R:127.0.0.1:1=>2",
                err)
        c5.close()

        dropped = await self.ctl_call("POST", "/tunnel/drop")
        closed = await c.wait_closed(5)
        await asyncio.sleep(0.2)
        r.check("drop closes the tunnel and releases the port",
                dropped["dropped"] >= 1 and closed and await self.ctl_call("GET", "/tunnel/ports") == [],
                dropped)

        await self.ctl_call("POST", "/tunnel/stop")
        refused = False
        try:
            await ChiselClient().connect(self.tunnel, "u", "p")
        except OSError:
            refused = True
        started = await self.ctl_call("POST", "/tunnel/start")
        c6 = ChiselClient()
        await c6.connect(self.tunnel, "u", "p", expect_fingerprint=self.fp)
        ok, err = await c6.send_config(cfg)
        r.check("stop refuses, start listens again with the same key, port bindable again",
                refused and started["fingerprint"] == self.fp and ok, (refused, started, err))
        c6.close()

        await self.ctl_call("POST", "/tunnel/garbage", {"data": "NOT-SSH\r\n"})
        g = ChiselClient()
        try:
            await g.connect(self.tunnel, "u", "p")
            r.check("garbage on the next WebSocket breaks the handshake", False, "connected")
        except Exception as exc:
            r.check("garbage on the next WebSocket breaks the handshake", True, exc)
        g.close()

        await self.ctl_call("POST", "/tunnel/settings", {"config_timeout": 0.5})
        c7 = ChiselClient()
        await c7.connect(self.tunnel, "u", "p")
        r.check("no config within the config timeout -> connection closed", await c7.wait_closed(5))
        await self.ctl_call("POST", "/tunnel/settings", {"config_timeout": 10})

        vs = await self.ctl_call("GET", "/violations")
        r.check("deliberately bad configs were recorded as tunnel violations",
                sorted(v["message"].split(": ", 1)[1] for v in vs)
                == ['Remotes[0] protocols must be "tcp"', "config is not JSON"], vs)
        echo.close()

    async def run(self) -> None:
        for test in (self.test_api, self.test_tunnel_http, self.test_tunnel):
            try:
                await test()
            except Exception:
                self.r.check(f"{test.__name__} raised", False, traceback.format_exc())
        await self.http.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main() -> int:
    r = Results()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(HERE, "server.py"), "--api-port", "0", "--tunnel-port", "0",
        "--key-seed", "testseed", "--tunnel-user", "u", "--tunnel-password", "p",
        "--keepalive", "1", "--token", TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=open(os.environ.get("SELFTEST_LOG", os.devnull), "w"))
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        ready = json.loads(line)
        await SelfTest(ready, r).run()
    except Exception:
        r.check("server start", False, traceback.format_exc())
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
    r.check("server exits cleanly on SIGTERM", proc.returncode == 0, proc.returncode)
    print(f"selftest: {r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
