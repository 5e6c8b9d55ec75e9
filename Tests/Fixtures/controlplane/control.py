"""The `/_test/...` scripting API (JSON in, JSON out) used by tests to drive the double.

See README.md in this folder for the list; every POST takes a JSON object (or nothing).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from aiohttp import web

from api import ControlPlane, json_response
from chisel_ssh import KEX_PROFILES, new_host_key
from tunnel_server import TunnelServer

log = logging.getLogger("control")

FAILURE_MODES = {"status", "malformed", "oversized", "empty", "delay", "close"}
ENDPOINTS = {"register", "heartbeat", "tunnel_status", "any"}
STATUS_FIELDS = {"status", "forwards", "credentials", "poll_frequency", "tunnel_server_addr",
                 "server_fingerprint", "omit", "http_status", "raw_body"}


class BadRequest(Exception):
    pass


async def _json(request: web.Request) -> dict:
    raw = await request.read()
    if not raw:
        return {}
    try:
        import json
        obj = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest("body must be a JSON object")
    return obj


class Control:
    def __init__(self, cp: ControlPlane, tunnel: TunnelServer):
        self.cp = cp
        self.tunnel = tunnel

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        for method, path, fn in [
            ("GET", "/_test/state", self.state),
            ("POST", "/_test/reset", self.reset),
            ("GET", "/_test/requests", self.get_requests),
            ("DELETE", "/_test/requests", self.clear_requests),
            ("GET", "/_test/wait", self.wait),
            ("GET", "/_test/violations", self.get_violations),
            ("DELETE", "/_test/violations", self.clear_violations),
            ("POST", "/_test/fail", self.add_failure),
            ("DELETE", "/_test/fail", self.clear_failures),
            ("POST", "/_test/rotate-token", self.rotate_token),
            ("POST", "/_test/tokens", self.set_tokens),
            ("POST", "/_test/settings", self.set_settings),
            ("GET", "/_test/clusters", self.get_clusters),
            ("POST", "/_test/clusters/{cluster_id}/delete", self.delete_cluster),
            ("GET", "/_test/tunnel-status", self.get_tunnel_status),
            ("POST", "/_test/tunnel-status", self.set_tunnel_status),
            ("DELETE", "/_test/tunnel-status", self.clear_tunnel_status),
            ("POST", "/_test/tunnel/drop", self.tunnel_drop),
            ("POST", "/_test/tunnel/stop", self.tunnel_stop),
            ("POST", "/_test/tunnel/start", self.tunnel_start),
            ("POST", "/_test/tunnel/freeze", self.tunnel_freeze),
            ("GET", "/_test/tunnel/settings", self.get_tunnel_settings),
            ("POST", "/_test/tunnel/settings", self.set_tunnel_settings),
            ("POST", "/_test/tunnel/garbage", self.tunnel_garbage),
            ("GET", "/_test/tunnel/ports", self.tunnel_ports),
            ("POST", "/_test/tunnel/probe-channel", self.tunnel_probe_channel),
            ("GET", "/_test/tunnel/sessions", self.tunnel_sessions),
            ("GET", "/_test/tunnel/events", self.tunnel_events),
            ("GET", "/_test/tunnel/http-requests", self.tunnel_http_requests),
        ]:
            r.add_route(method, path, self._wrap(fn))

    def _wrap(self, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except BadRequest as exc:
                return json_response({"error": str(exc)}, 400)
            except Exception as exc:
                log.exception("control %s failed", request.path)
                return json_response({"error": repr(exc)}, 500)
        return handler

    # -- control plane ---------------------------------------------------------------------
    async def state(self, request: web.Request) -> web.Response:
        cp = self.cp
        return json_response({
            "api_url": request.app["info"].get("api_url"), "tunnel_url": self.tunnel.url,
            "fingerprint": self.tunnel.settings.fingerprint,
            "tunnel_running": self.tunnel.running, "clusters": cp.clusters,
            "valid_tokens": sorted(cp.valid_tokens), "rotation": cp.rotation,
            "failures": cp.failures, "settings": cp.settings,
            "tunnel_status": cp.tunnel_status_cfg, "requests": len(cp.requests),
            "violations": len(cp.violations), "tunnel_ports": self.tunnel.ports()})

    async def reset(self, request: web.Request) -> web.Response:
        body = await _json(request)
        cp = self.cp
        cp.reset(keep_clusters=not body.get("clusters", False))
        cp.requests.clear()
        cp.violations.clear()
        self.tunnel.garbage.clear()
        self.tunnel.events.clear()
        cp.save_state()
        return json_response({"ok": True})

    async def get_requests(self, request: web.Request) -> web.Response:
        q = request.query
        return json_response(self.cp.find_requests(q.get("path"), q.get("endpoint"),
                                                   int(q.get("since", "0"))))

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.cp.requests.clear()
        return json_response({"ok": True})

    async def wait(self, request: web.Request) -> web.Response:
        """Long poll: answer when `count` requests match (path/endpoint/since), or at timeout."""
        q = request.query
        count = int(q.get("count", "1"))
        deadline = asyncio.get_running_loop().time() + min(float(q.get("timeout", "10")), 120)
        while True:
            found = self.cp.find_requests(q.get("path"), q.get("endpoint"),
                                          int(q.get("since", "0")))
            left = deadline - asyncio.get_running_loop().time()
            if len(found) >= count or left <= 0:
                return json_response({"matched": len(found) >= count, "requests": found})
            await self.cp.wait_change(left)

    async def get_violations(self, request: web.Request) -> web.Response:
        return json_response(self.cp.violations)

    async def clear_violations(self, request: web.Request) -> web.Response:
        self.cp.violations.clear()
        return json_response({"ok": True})

    async def add_failure(self, request: web.Request) -> web.Response:
        body = await _json(request)
        endpoint = body.get("endpoint", "any")
        mode = body.get("mode", "status")
        if endpoint not in ENDPOINTS:
            raise BadRequest(f"endpoint must be one of {sorted(ENDPOINTS)}")
        if mode not in FAILURE_MODES:
            raise BadRequest(f"mode must be one of {sorted(FAILURE_MODES)}")
        count = int(body.get("count", 1))
        if count < 1:
            raise BadRequest("count must be >= 1")
        entry = {"endpoint": endpoint, "mode": mode, "remaining": count, "count": count}
        for key in ("status", "body", "delay", "chunked"):
            if key in body:
                entry[key] = body[key]
        self.cp.failures.append(entry)
        return json_response({"ok": True, "failures": self.cp.failures})

    async def clear_failures(self, request: web.Request) -> web.Response:
        self.cp.failures.clear()
        return json_response({"ok": True})

    async def rotate_token(self, request: web.Request) -> web.Response:
        body = await _json(request)
        revoke = body.get("revoke_old", "on_delivery")
        field = body.get("field", "token")
        if revoke not in ("now", "on_delivery", "never"):
            raise BadRequest("revoke_old must be now|on_delivery|never")
        if field not in ("token", "cluster.token"):
            raise BadRequest("field must be token|cluster.token")
        token = self.cp.rotate(body.get("token"), revoke, field)
        self.cp.save_state()
        return json_response({"token": token})

    async def set_tokens(self, request: web.Request) -> web.Response:
        body = await _json(request)
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise BadRequest("tokens must be a list of strings")
        self.cp.valid_tokens = set(tokens)
        self.cp.register_only_tokens = set()
        self.cp.save_state()
        return json_response({"valid_tokens": sorted(self.cp.valid_tokens)})

    async def set_settings(self, request: web.Request) -> web.Response:
        body = await _json(request)
        for key, value in body.items():
            if key not in self.cp.settings or not isinstance(value, int):
                raise BadRequest(f"unknown setting or not an int: {key}")
            self.cp.settings[key] = value
        return json_response(self.cp.settings)

    async def get_clusters(self, request: web.Request) -> web.Response:
        return json_response(self.cp.clusters)

    async def delete_cluster(self, request: web.Request) -> web.Response:
        found = self.cp.clusters.pop(request.match_info["cluster_id"], None) is not None
        self.cp.save_state()
        return json_response({"deleted": found})

    async def get_tunnel_status(self, request: web.Request) -> web.Response:
        agent = request.query.get("agent_id", "*")
        status, body, raw = self.cp.tunnel_status_body(agent)
        return json_response({"http_status": status, "body": body, "raw_body": raw,
                              "config": self.cp.tunnel_status_cfg})

    async def set_tunnel_status(self, request: web.Request) -> web.Response:
        body = await _json(request)
        agent = body.pop("agent_id", "*")
        unknown = set(body) - STATUS_FIELDS - {"replace"}
        if unknown:
            raise BadRequest(f"unknown fields {sorted(unknown)}; allowed {sorted(STATUS_FIELDS)}")
        replace = body.pop("replace", False)
        cfg = {} if replace else dict(self.cp.tunnel_status_cfg.get(agent, {}))
        cfg.update(body)
        self.cp.tunnel_status_cfg[agent] = cfg
        self.cp.save_state()
        status, out, raw = self.cp.tunnel_status_body(agent)
        return json_response({"http_status": status, "body": out, "raw_body": raw})

    async def clear_tunnel_status(self, request: web.Request) -> web.Response:
        self.cp.tunnel_status_cfg = {"*": {}}
        self.cp.save_state()
        return json_response({"ok": True})

    # -- tunnel ------------------------------------------------------------------------------
    async def tunnel_drop(self, request: web.Request) -> web.Response:
        return json_response({"dropped": self.tunnel.drop_all()})

    async def tunnel_stop(self, request: web.Request) -> web.Response:
        await self.tunnel.stop()
        return json_response({"running": self.tunnel.running})

    async def tunnel_start(self, request: web.Request) -> web.Response:
        await self.tunnel.start()
        return json_response({"running": self.tunnel.running, "tunnel_url": self.tunnel.url,
                              "fingerprint": self.tunnel.settings.fingerprint})

    async def tunnel_freeze(self, request: web.Request) -> web.Response:
        body = await _json(request)
        n = self.tunnel.set_frozen(bool(body.get("frozen", True)))
        return json_response({"sessions": n, "frozen": bool(body.get("frozen", True))})

    async def get_tunnel_settings(self, request: web.Request) -> web.Response:
        return json_response(self.tunnel.settings.public())

    async def set_tunnel_settings(self, request: web.Request) -> web.Response:
        body = await _json(request)
        s = self.tunnel.settings
        for key, value in body.items():
            if key in ("user", "password"):
                if value is not None and not isinstance(value, str):
                    raise BadRequest(f"{key} must be a string or null")
                setattr(s, key, value if key == "user" else (value or ""))
            elif key == "acl":
                if not isinstance(value, list):
                    raise BadRequest("acl must be a list of regexes")
                s.acl = [str(v) for v in value]
            elif key in ("keepalive", "ping_timeout", "config_timeout"):
                setattr(s, key, float(value))
            elif key in ("answer_pings", "reverse"):
                setattr(s, key, bool(value))
            elif key == "kex_profile":
                if value not in KEX_PROFILES:
                    raise BadRequest(f"kex_profile must be one of {sorted(KEX_PROFILES)}")
                s.kex_profile = value
            elif key == "key_seed":  # new host key for new sessions (a different server)
                s.key_seed = value or None
                s.host_key = new_host_key(s.key_seed)
            else:
                raise BadRequest(f"unknown tunnel setting {key}")
        return json_response(s.public())

    async def tunnel_garbage(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if "data_b64" in body:
            data = base64.b64decode(body["data_b64"])
        else:
            data = str(body.get("data", "HTTP/1.1 200 OK garbage \x00\xff")).encode("latin-1")
        order = {"data": data, "close": bool(body.get("close", True))}
        self.tunnel.garbage.append(order)
        return json_response({"queued": len(self.tunnel.garbage)})

    async def tunnel_probe_channel(self, request: web.Request) -> web.Response:
        body = await _json(request)
        return json_response(await self.tunnel.probe(str(body.get("target", ""))))

    async def tunnel_ports(self, request: web.Request) -> web.Response:
        return json_response(self.tunnel.ports())

    async def tunnel_sessions(self, request: web.Request) -> web.Response:
        return json_response([s.info() for s in self.tunnel.sessions.values()])

    async def tunnel_events(self, request: web.Request) -> web.Response:
        since = float(request.query.get("since_ts", "0"))
        return json_response([e for e in self.tunnel.events if e["ts"] > since])

    async def tunnel_http_requests(self, request: web.Request) -> web.Response:
        return json_response(self.tunnel.http_requests)
