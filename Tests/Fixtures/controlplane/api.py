"""The control-plane API of docs/control-plane-api.md (register, heartbeat, tunnel status).

Every request is recorded; every deviation from the contract (headers, body fields, paths) is
recorded as a violation. Failures scripted through /_test/fail are applied before the normal
logic of the matching endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import time
import uuid
from typing import Any, Optional

from aiohttp import web

import validate
from tunnel import now_iso

log = logging.getLogger("api")

MAX_RECORDED = 10000
OVERSIZE = (1 << 20) + 4096


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        content_type="application/json")


class ControlPlane:
    def __init__(self, tunnel: Any, tokens: list[str], state_file: Optional[str],
                 base_path: str):
        self.tunnel = tunnel
        # (url, fingerprint) of another chisel server to hand out instead of ours, if any.
        self.external_tunnel: Optional[tuple[str, str]] = None
        self.base_path = base_path.rstrip("/")
        self.state_file = state_file
        self.initial_tokens = list(tokens)
        self.seq = 0
        self.requests: list[dict] = []
        self.violations: list[dict] = []
        self._waiters: list[asyncio.Future] = []
        self.reset(keep_clusters=False)
        self._load_state()

    # -- state -------------------------------------------------------------------------------
    def reset(self, keep_clusters: bool = True) -> None:
        self.valid_tokens: set[str] = set(self.initial_tokens)
        self.register_only_tokens: set[str] = set()
        self.rotation: Optional[dict] = None
        self.failures: list[dict] = []
        self.settings = {"register_status": 201, "resume_status": 409, "heartbeat_status": 200,
                         "unknown_cluster_status": 404}
        self.tunnel_status_cfg: dict[str, dict] = {"*": {}}
        if not keep_clusters:
            self.clusters: dict[str, dict] = {}

    def _load_state(self) -> None:
        if not self.state_file or not os.path.exists(self.state_file):
            return
        try:
            with open(self.state_file) as f:
                state = json.load(f)
            self.clusters = state.get("clusters", {})
            # --token values stay valid; rotated tokens the agent may have persisted too
            self.valid_tokens = set(self.initial_tokens) | set(state.get("valid_tokens", []))
            self.tunnel_status_cfg = state.get("tunnel_status", {"*": {}})
            log.info("state loaded from %s: %d clusters", self.state_file, len(self.clusters))
        except (OSError, ValueError) as exc:
            log.warning("state file %s unreadable (%s), starting empty", self.state_file, exc)

    def save_state(self) -> None:
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump({"clusters": self.clusters, "valid_tokens": sorted(self.valid_tokens),
                           "tunnel_status": self.tunnel_status_cfg}, f, indent=1)
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("cannot write state file %s: %s", self.state_file, exc)

    def add_violation(self, entry: Optional[dict], field: str, message: str,
                      source: str = "api") -> None:
        v = {"time": now_iso(), "source": source, "field": field, "message": message}
        if entry is not None:
            v.update(request_seq=entry["seq"], method=entry["method"], path=entry["path"])
        log.warning("violation: %s %s: %s", entry["path"] if entry else source, field, message)
        self.violations.append(v)
        del self.violations[:-MAX_RECORDED]
        self._wake()

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters = []

    async def wait_change(self, timeout: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass

    def find_requests(self, path: Optional[str] = None, endpoint: Optional[str] = None,
                      since: int = 0) -> list[dict]:
        return [r for r in self.requests
                if r["seq"] > since and (path is None or r["path"] == path or
                                         (path.endswith("*") and r["path"].startswith(path[:-1])))
                and (endpoint is None or r["endpoint"] == endpoint)]

    # -- tokens ------------------------------------------------------------------------------
    def rotate(self, token: Optional[str], revoke_old: str, field: str) -> str:
        new = token or "tok-" + secrets.token_hex(12)
        old = set(self.valid_tokens)
        self.rotation = {"token": new, "revoke_old": revoke_old, "field": field, "old": sorted(old)}
        if revoke_old == "now":
            self.register_only_tokens |= old  # heartbeats fail now; register still rotates
            self.valid_tokens = {new}
        else:
            self.valid_tokens = old | {new}
        log.info("token rotation queued (revoke_old=%s)", revoke_old)
        return new

    def _deliver_rotation(self, body: dict) -> None:
        rot, self.rotation = self.rotation, None
        if rot is None:
            return
        if rot["field"] == "cluster.token":
            body["cluster"] = {"token": rot["token"], "id": body["cluster_id"]}
        else:
            body["token"] = rot["token"]
        if rot["revoke_old"] == "never":
            self.valid_tokens |= {rot["token"]}
        else:
            self.valid_tokens = {rot["token"]}
        self.register_only_tokens = set()
        self.save_state()

    # -- request plumbing ------------------------------------------------------------------
    async def handle(self, request: web.Request, endpoint: str, params: dict) -> web.StreamResponse:
        raw = await request.read()
        self.seq += 1
        headers = {k: v for k, v in request.headers.items()}
        entry = {"seq": self.seq, "time": now_iso(), "ts": time.time(), "method": request.method,
                 "path": request.path, "query": request.query_string, "endpoint": endpoint,
                 "headers": headers, "body_raw": raw.decode("utf-8", errors="replace"),
                 "body": None, "status": None, "violations": []}
        self.requests.append(entry)
        del self.requests[:-MAX_RECORDED]
        try:
            response = await self._dispatch(request, endpoint, params, entry, raw)
        except asyncio.CancelledError:  # scripted "close": connection dropped, no answer
            entry["status"] = 0
            self._wake()
            raise
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.path)
            response = json_response({"error": f"test server error: {exc!r}"}, 500)
        entry["status"] = response.status
        log.info("%s %s -> %d", request.method, request.path, response.status)
        self._wake()
        return response

    def _violate(self, entry: dict, problems: list) -> None:
        for field, message in problems:
            entry["violations"].append({"field": field, "message": message})
            self.add_violation(entry, field, message)

    async def _dispatch(self, request: web.Request, endpoint: str, params: dict, entry: dict,
                        raw: bytes) -> web.StreamResponse:
        if endpoint == "unknown":
            self._violate(entry, [("path", f"no such endpoint: {request.method} {request.path}")])
            return json_response({"error": "not found"}, 404)
        self._violate(entry, validate.check_headers(request.method, request.headers,
                                                    len(raw) > 0))
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
                entry["body"] = body
            except ValueError as exc:
                self._violate(entry, [("body", f"not JSON: {exc}")])
                return json_response({"error": "invalid JSON"}, 400)
        failure = self._take_failure(endpoint)
        if failure is not None:
            entry["failure"] = failure
            scripted = await self._apply_failure(request, failure)
            if scripted is not None:
                return scripted
        token = (request.headers.get("Authorization") or "")[7:].strip()
        allowed = self.valid_tokens | (self.register_only_tokens if endpoint == "register" else set())
        if token not in allowed:
            return json_response({"error": "unauthorized"}, 401)
        if endpoint == "register":
            return self._register(body, entry)
        if endpoint == "heartbeat":
            return self._heartbeat(body, params["cluster_id"], entry)
        return self._tunnel_status(params["agent_id"])

    def _take_failure(self, endpoint: str) -> Optional[dict]:
        for f in self.failures:
            if f["endpoint"] in (endpoint, "any"):
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    self.failures.remove(f)
                return {k: v for k, v in f.items() if k != "remaining"}
        return None

    async def _apply_failure(self, request: web.Request, f: dict) -> Optional[web.StreamResponse]:
        mode = f.get("mode", "status")
        if f.get("delay"):
            await asyncio.sleep(float(f["delay"]))
        status = int(f.get("status", 200 if mode in ("malformed", "oversized", "empty") else 500))
        if mode == "delay":
            return None if "status" not in f else json_response({"error": "scripted"}, status)
        if mode == "status":
            body = f.get("body")
            if body is None:
                return json_response({"error": "scripted failure", "status": status}, status)
            return web.Response(status=status, text=body if isinstance(body, str)
                                else json.dumps(body), content_type="application/json")
        if mode == "malformed":
            return web.Response(status=status, body=b'{"cluster_id": "cl-trunc', 
                                content_type="application/json")
        if mode == "empty":
            return web.Response(status=status, body=b"", content_type="application/json")
        if mode == "oversized":
            pad = b'{"cluster_id":"cl-big","status":"IDLE","pad":"' + b"a" * OVERSIZE + b'"}'
            if f.get("chunked"):
                resp = web.StreamResponse(status=status)
                resp.content_type = "application/json"
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                for i in range(0, len(pad), 65536):
                    await resp.write(pad[i:i + 65536])
                await resp.write_eof()
                return resp
            return web.Response(status=status, body=pad, content_type="application/json")
        if mode == "close":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()
        return json_response({"error": f"unknown failure mode {mode!r}"}, 500)

    # -- endpoints ---------------------------------------------------------------------------
    def _register(self, body: Any, entry: dict) -> web.Response:
        self._violate(entry, validate.check_register(body))
        if not isinstance(body, dict):
            return json_response({"error": "body must be an object"}, 400)
        agent_id = body.get("agent_id") if isinstance(body.get("agent_id"), str) else ""
        cluster_id = body.get("cluster_id")
        if isinstance(cluster_id, str) and cluster_id:
            cluster = self.clusters.get(cluster_id)
            if cluster is None:
                return json_response({"error": "cluster not found"},
                                     self.settings["unknown_cluster_status"])
            cluster["registrations"] = cluster.get("registrations", 0) + 1
            out = self._cluster_body(cluster)
            self._deliver_rotation(out)
            self.save_state()
            status = self.settings["resume_status"]
            if status == 409:
                out["error"] = "cluster already registered"
            return json_response(out, status)
        cluster_id = "cl-" + str(uuid.uuid4())
        cluster = {"cluster_id": cluster_id, "agent_id": agent_id,
                   "name": body.get("name") if isinstance(body.get("name"), str) else "",
                   "registered_at": now_iso(), "registrations": 1, "heartbeats": 0,
                   "last_heartbeat": None}
        self.clusters[cluster_id] = cluster
        out = self._cluster_body(cluster)
        self._deliver_rotation(out)
        self.save_state()
        return json_response(out, self.settings["register_status"])

    def _cluster_body(self, cluster: dict) -> dict:
        return {"cluster_id": cluster["cluster_id"], "name": cluster["name"],
                "status": "registered", "api_server": "https://k8s.test.invalid:6443",
                "tunnel_url": self.tunnel_url()}

    def _heartbeat(self, body: Any, cluster_id: str, entry: dict) -> web.Response:
        cluster = self.clusters.get(cluster_id)
        self._violate(entry, validate.check_heartbeat(body, cluster_id,
                                                      cluster["agent_id"] if cluster else None))
        if cluster is None:
            return json_response({"error": "cluster not found"},
                                 self.settings["unknown_cluster_status"])
        cluster["heartbeats"] += 1
        cluster["last_heartbeat"] = body if isinstance(body, dict) else None
        status = self.settings["heartbeat_status"]
        if status == 204:
            return web.Response(status=204)
        return json_response({"status": "ok"}, status)

    def tunnel_url(self) -> str:
        """The tunnel server handed out: ours, or an external one (server.py --external-tunnel-url)."""
        return self.external_tunnel[0] if self.external_tunnel else self.tunnel.url

    def tunnel_fingerprint(self) -> str:
        return self.external_tunnel[1] if self.external_tunnel else self.tunnel.settings.fingerprint

    def tunnel_status_body(self, agent_id: str) -> tuple[int, Optional[dict], Optional[str]]:
        cfg = dict(self.tunnel_status_cfg.get("*", {}))
        cfg.update(self.tunnel_status_cfg.get(agent_id, {}))
        s = self.tunnel.settings
        user, password = (s.user, s.password) if s.user is not None else ("pipeops", "pipeops")
        creds = base64.b64encode(f"{user}:{password}".encode()).decode()
        body = {"status": "IDLE", "forwards": [], "credentials": creds, "poll_frequency": 5,
                "tunnel_server_addr": self.tunnel_url(), "server_fingerprint": self.tunnel_fingerprint()}
        for key in body:
            if key in cfg:
                body[key] = cfg[key]
        for key in cfg.get("omit", []):
            body.pop(key, None)
        return int(cfg.get("http_status", 200)), body, cfg.get("raw_body")

    def _tunnel_status(self, agent_id: str) -> web.Response:
        status, body, raw = self.tunnel_status_body(agent_id)
        if raw is not None:
            return web.Response(status=status, text=raw, content_type="application/json")
        if status == 404:
            return json_response({"error": "no tunnel for this agent"}, 404)
        return json_response(body, status)

    # -- routes ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        p = self.base_path

        def route(endpoint: str):
            async def handler(request: web.Request) -> web.StreamResponse:
                return await self.handle(request, endpoint, dict(request.match_info))
            return handler

        app.router.add_post(p + "/api/v1/clusters/agent/register", route("register"))
        app.router.add_post(p + "/api/v1/clusters/agent/{cluster_id}/heartbeat",
                            route("heartbeat"))
        app.router.add_get(p + "/api/agents/{agent_id}/tunnel/status", route("tunnel_status"),
                           allow_head=False)
        app.router.add_get(p + "/health", self._health, allow_head=False)
        if p:
            app.router.add_get("/health", self._health, allow_head=False)

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "tunnel_running": self.tunnel.running})

    async def catch_all(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, "unknown", {})
