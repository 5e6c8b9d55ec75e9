"""The chisel-v3 tunnel server: WebSocket endpoint, SSH sessions, config/ping handling.

Sessions follow chisel's server/server_handler.go as described in docs/chisel-v3-protocol.md
sections 1.3-1.4 (handshake), 5 (auth), 6 (config), 7 (reverse channels) and 8 (keepalive).
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import re
import socket
import time
from typing import Any, Callable, Optional

import asyncssh
from asyncssh.constants import MSG_GLOBAL_REQUEST
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from chisel_ssh import (CIPHERS, CLIENT_BANNER, KEX_PROFILES, MACS, SERVER_BANNER,
                        ChiselVersionMixin, WSTransport)
from tunnel import (MAX_WS_MESSAGE, PROTOCOL, SERVER_VERSION, _WILDCARD, ConfigError,
                    ReverseListener, TunnelSettings, config_shape_problems, decode_config,
                    now_iso, probe_channel, remote_display, remote_local, user_addr)

log = logging.getLogger("tunnel")


class ChiselServerConnection(ChiselVersionMixin, asyncssh.SSHServerConnection):
    chisel_banner = SERVER_BANNER
    session: "ChiselSession"

    def on_peer_version(self, text: str) -> None:
        self.session.client_banner = text
        if text.encode() != CLIENT_BANNER:
            self.session.server.violation(self.session, "banner",
                                          f"client banner {text!r}, expected {CLIENT_BANNER!r}")

    def _get_extra_kex_algs(self) -> list:
        # chisel v1.10.x (x/crypto v0.16) had no strict KEX; emulate it for that profile.
        if self.session.server.settings.kex_profile == "v1.10":
            return [b"ext-info-s"]
        return super()._get_extra_kex_algs()

    def _process_global_request(self, _pkttype: int, _pktid: int, packet: Any) -> None:
        # Replaces asyncssh's queue: chisel needs the raw payload, raw reply data, and no
        # reply at all to unknown requests (doc 6.2, 8).
        name = packet.get_string().decode("latin-1")
        want_reply = packet.get_boolean()
        self.session.on_global_request(name, want_reply, packet.get_remaining_payload())

    # asyncssh dispatches packets through this class-level table of plain functions, so the
    # override above only takes effect once the table points at it.
    _packet_handlers = {**asyncssh.SSHServerConnection._packet_handlers,
                        MSG_GLOBAL_REQUEST: _process_global_request}


class ChiselSSHServer(asyncssh.SSHServer):
    def __init__(self, session: "ChiselSession"):
        self.session = session

    def begin_auth(self, username: str) -> bool:
        return True  # "none" is always rejected; only password is offered

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        s = self.session.server.settings
        ok = s.user is None or (username == s.user and password == s.password)
        if ok:
            self.session.user = username
        else:
            log.info("session#%d: Login failed for user: %s", self.session.id, username)
            self.session.event("login-failed", username)
        return ok

    def auth_completed(self) -> None:
        self.session.on_authenticated()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.session.on_ssh_closed(exc)


class ChiselSession:
    def __init__(self, server: "TunnelServer", ws: Any):
        self.server = server
        self.id = next(server.session_ids)
        self.ws = ws
        self.peer = f"{ws.remote_address[0]}:{ws.remote_address[1]}"
        self.started = now_iso()
        self.request_headers = {k: v for k, v in ws.request.headers.raw_items()}
        self.client_banner = ""
        self.user: Optional[str] = None
        self.state = "handshake"  # handshake, awaiting-config, ready, config-failed, closed
        self.config_raw = b""
        self.config: Optional[dict] = None
        self.config_error = ""
        self.listeners: list[ReverseListener] = []
        self.pings_sent = 0
        self.pongs = 0
        self.pings_answered = 0
        self.conn: Optional[ChiselServerConnection] = None
        self.transport: Optional[WSTransport] = None
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: list[asyncio.Task] = []

    def event(self, kind: str, detail: Any = None) -> None:
        self.server.record_event(self, kind, detail)

    async def run(self) -> None:
        s = self.server.settings
        kex = KEX_PROFILES.get(s.kex_profile, KEX_PROFILES["head"])
        options = await asyncssh.SSHServerConnectionOptions.construct(
            config=None, server_factory=lambda: ChiselSSHServer(self),
            server_host_keys=[s.host_key], password_auth=True, public_key_auth=False,
            kbdint_auth=False, host_based_auth=False, gss_host=None, allow_pty=False,
            kex_algs=kex, encryption_algs=CIPHERS, mac_algs=MACS, compression_algs=["none"],
            keepalive_interval=0, login_timeout=120, rdns_lookup=False, agent_forwarding=False)
        conn = ChiselServerConnection(asyncio.get_running_loop(), options, wait=None)
        conn.session = self
        self.conn = conn
        self.transport = WSTransport(self.ws, conn)
        conn.connection_made(self.transport)
        await self.transport.read_loop()

    # -- SSH events ----------------------------------------------------------------------------
    def on_authenticated(self) -> None:
        self.state = "awaiting-config"
        self.event("authenticated", self.user)
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.server.settings.config_timeout,
                                            self._config_timeout))

    def _config_timeout(self) -> None:
        if self.state == "awaiting-config":
            log.info("session#%d: Timeout waiting for configuration", self.id)
            self.event("config-timeout")
            self.close()

    def on_global_request(self, name: str, want_reply: bool, payload: bytes) -> None:
        try:
            self._global_request(name, want_reply, payload)
        except Exception:
            log.exception("session#%d: global request %r failed", self.id, name)
            self.close()

    def _reply(self, want_reply: bool, ok: bool, data: bytes = b"") -> None:
        if want_reply and self.conn is not None:  # x/crypto's Reply is a no-op otherwise
            self.conn.reply_global(ok, data)

    def _global_request(self, name: str, want_reply: bool, payload: bytes) -> None:
        if self.state == "awaiting-config":
            self._handle_config(name, want_reply, payload)
        elif self.state == "ready" and name == "ping":
            self.pings_answered += 1
            if self.server.settings.answer_pings:
                self._reply(want_reply, True, b"pong")
            else:
                self.event("ping-ignored")
        elif self.state == "ready":
            log.info("session#%d: tun: Unknown request: %s", self.id, name)
            self.event("unknown-request", name)
            if want_reply:
                self.server.violation(self, "global-request",
                                      f"want_reply request {name!r} is never answered by chisel")
        else:  # after a failed config nothing services requests any more (doc 6.2.5)
            self.event("request-ignored", name)

    def _fail(self, want_reply: bool, text: str) -> None:
        self.state = "config-failed"
        self.config_error = "server: " + text
        log.info("session#%d: Failed: %s", self.id, self.config_error)
        self.event("config-failed", self.config_error)
        self._reply(want_reply, False, self.config_error.encode())

    def _handle_config(self, name: str, want_reply: bool, payload: bytes) -> None:
        for timer in self._timers:
            timer.cancel()
        if name != "config":
            self._fail(want_reply, "expecting config request")
            return
        self.config_raw = payload
        for problem in config_shape_problems(payload):
            self.server.violation(self, "config", problem)
        try:
            config = decode_config(payload)
        except ConfigError as exc:
            log.debug("session#%d: config decode: %s", self.id, exc)
            self._fail(want_reply, "invalid config")
            return
        self.config = config
        version = config["Version"].lstrip("v")
        if version != SERVER_VERSION:
            log.info("session#%d: Client version (%s) differs from server version (%s)",
                     self.id, version, SERVER_VERSION)
        s = self.server.settings
        for remote in config["Remotes"]:
            if s.user is not None and s.acl:
                addr = user_addr(remote)
                if not any(re.search(rx, addr) for rx in s.acl):
                    self._fail(want_reply, f"access to '{addr}' denied")
                    return
            if remote["Reverse"] and not s.reverse:
                self._fail(want_reply, "Reverse port forwaring not enabled on server")
                return
            if remote["Reverse"] and not self.server.can_listen(remote):
                self._fail(want_reply, f"Server cannot listen on {remote_display(remote)}")
                return
        self.state = "ready"
        self._reply(want_reply, True)
        self.event("config-accepted", [remote_display(r) for r in config["Remotes"]])
        self._spawn(self._bind_remotes([r for r in config["Remotes"] if r["Reverse"]]))
        if s.keepalive > 0:
            self._spawn(self._keepalive())

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(self.server.spawn(coro))

    async def _bind_remotes(self, remotes: list) -> None:
        try:
            for remote in remotes:
                listener = ReverseListener(self, remote)
                await listener.start()
                self.listeners.append(listener)
        except OSError as exc:
            # chisel's BindRemotes error cancels the whole SSH connection
            log.info("session#%d: bind failed: %s", self.id, exc)
            self.event("bind-failed", str(exc))
            self.close()
            return
        if self.state == "closed":
            self._close_listeners()
            return
        log.info("session#%d: tun: Bound proxies", self.id)
        self.event("bound", [lst.info() for lst in self.listeners])

    async def _keepalive(self) -> None:
        s = self.server.settings
        while self.state == "ready" and self.conn is not None:
            await asyncio.sleep(max(s.keepalive, 0.05))
            if self.state != "ready" or s.keepalive <= 0:
                return
            self.pings_sent += 1
            try:
                request = self.conn.global_request(b"ping")
                if s.ping_timeout > 0:
                    ok, data = await asyncio.wait_for(request, s.ping_timeout)
                else:
                    ok, data = await request
            except Exception as exc:
                log.info("session#%d: ping failed: %r", self.id, exc)
                self.event("ping-failed", repr(exc))
                self.close()
                return
            if data and data != b"pong":
                log.info("session#%d: strange ping response %r", self.id, data)
                self.event("ping-bad-reply", data.decode("latin-1"))
                self.close()
                return
            self.pongs += 1

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        """Drop the connection like chisel's sshConn.Close(): TCP closed, no close frame."""
        if self.conn is not None:
            self.conn.abort()
        if self.transport is not None:
            self.transport.close()

    def on_ssh_closed(self, exc: Optional[Exception]) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        log.info("session#%d: SSH disconnected (%s)", self.id, exc)
        self.event("disconnected", str(exc) if exc else None)
        self._close_listeners()
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    def _close_listeners(self) -> None:
        if self.listeners:
            log.info("session#%d: tun: Unbound proxies", self.id)
        for listener in self.listeners:
            listener.close()
        self.listeners = []

    def info(self) -> dict:
        return {"id": self.id, "peer": self.peer, "started": self.started, "state": self.state,
                "user": self.user, "client_banner": self.client_banner,
                "request_headers": self.request_headers,
                "config_raw": self.config_raw.decode("utf-8", errors="replace"),
                "config": self.config, "config_error": self.config_error,
                "ports": [lst.info() for lst in self.listeners],
                "pings_sent": self.pings_sent, "pongs": self.pongs,
                "client_pings": self.pings_answered,
                "bytes_in": self.transport.bytes_in if self.transport else 0,
                "bytes_out": self.transport.bytes_out if self.transport else 0,
                "frozen": bool(self.transport and self.transport.frozen)}


def _go_text_response(status: int, reason: str, body: bytes) -> Response:
    """A net/http style plain answer (Date, Content-Length, sniffed Content-Type)."""
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)),
                       ("Content-Length", str(len(body))),
                       ("Content-Type", "text/plain; charset=utf-8")])
    return Response(status, reason, headers, body)


class TunnelServer:
    def __init__(self, settings: TunnelSettings, port: int,
                 on_violation: Callable[[dict], None]):
        self.settings = settings
        self.port = port
        self.on_violation = on_violation
        self.session_ids = itertools.count(1)
        self.conn_ids = itertools.count(1)
        self.sessions: dict[int, ChiselSession] = {}
        self.events: list[dict] = []
        self.http_requests: list[dict] = []
        self.garbage: list[dict] = []  # queued "send garbage on the next WebSocket" orders
        self._server: Any = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def spawn(self, coro: Any) -> asyncio.Task:
        """Run a task whose failure is logged and never reaches the loop."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task failed: %r", t.exception(), exc_info=t.exception())
        task.add_done_callback(done)
        return task

    def record_event(self, session: Optional[ChiselSession], kind: str, detail: Any) -> None:
        self.events.append({"time": now_iso(), "ts": time.time(),
                            "session": session.id if session else None,
                            "kind": kind, "detail": detail})
        del self.events[:-2000]

    def violation(self, session: Optional[ChiselSession], field: str, message: str) -> None:
        log.warning("tunnel violation (%s): %s", field, message)
        self.on_violation({"source": "tunnel", "session": session.id if session else None,
                           "field": field, "message": message})

    def bind_address(self, remote: dict) -> tuple[str, int]:
        host = remote["LocalHost"]
        if host in _WILDCARD:
            host = self.settings.host  # never listen beyond loopback on a test machine
        host = host.strip("[]")
        port_text = remote["LocalPort"]
        port = int(port_text) if port_text else 0
        if not port_text.isdigit() and port_text != "" or port > 65535:
            raise OSError(f"bad port {port_text!r}")
        return host, port

    def can_listen(self, remote: dict) -> bool:
        """chisel's Remote.CanListen: bind LocalHost:LocalPort with LocalProto, release at once."""
        if remote["LocalProto"] != "tcp":
            return False  # "" fails in chisel too; udp is not supported by this test server
        try:
            host, port = self.bind_address(remote)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, addr = infos[0]
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(addr)
                sock.listen(1)
            return True
        except (OSError, ValueError) as exc:
            log.debug("cannot listen on %s: %s", remote_local(remote), exc)
            return False

    def ports(self) -> list[dict]:
        return [lst.info() for s in self.sessions.values() for lst in s.listeners]

    # -- HTTP / WebSocket ------------------------------------------------------------------
    def _process_request(self, connection: Any, request: Any) -> Optional[Response]:
        headers = request.headers
        protocols = headers.get_all("Sec-WebSocket-Protocol")
        self.http_requests.append({"time": now_iso(), "path": request.path,
                                   "headers": list(headers.raw_items())})
        del self.http_requests[:-500]
        upgrade = headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and protocols and protocols[0] == PROTOCOL:
            return None  # to the WebSocket upgrader (its own checks follow)
        if upgrade:
            log.info("ignored client connection using protocol '%s', expected '%s'",
                     protocols[0] if protocols else "", PROTOCOL)
        path = request.path.split("?", 1)[0]
        if path == "/health":
            return _go_text_response(200, "OK", b"OK\n")
        if path == "/version":
            return _go_text_response(200, "OK", SERVER_VERSION.encode())
        return _go_text_response(404, "Not Found", b"Not found")

    def _process_response(self, connection: Any, request: Any, response: Response) -> Response:
        if response.status_code == 101:
            # gorilla's 101 has exactly these three headers and no Sec-WebSocket-Protocol:
            # drop websockets' Date (and Server, already disabled with server_header=None).
            keep = Headers()
            for name in ("Upgrade", "Connection", "Sec-WebSocket-Accept"):
                keep[name] = response.headers[name]
            return Response(101, "Switching Protocols", keep)
        if response.headers.get("Content-Type", "").startswith("text/plain") and \
                response.body.startswith(b"Failed to open a WebSocket"):
            # gorilla's upgrade failures: 405 for a wrong method, else 400 Bad Request
            status = 405 if request.method != "GET" else 400
            reason = "Method Not Allowed" if status == 405 else "Bad Request"
            log.info("Failed to upgrade (%s)", response.body.decode(errors="replace").strip())
            resp = _go_text_response(status, reason, (reason + "\n").encode())
            resp.headers["Sec-Websocket-Version"] = "13"
            resp.headers["X-Content-Type-Options"] = "nosniff"
            return resp
        return response

    async def _handler(self, ws: Any) -> None:
        if self.garbage:
            order = self.garbage.pop(0)
            self.record_event(None, "garbage-sent", {"data": order["data"].decode("latin-1"),
                                                    "close": order.get("close", True)})
            try:
                await ws.send(order["data"])
                if order.get("close", True):
                    ws.transport.abort()
                else:
                    await ws.wait_closed()
            except Exception as exc:
                log.debug("garbage connection ended: %r", exc)
            return
        session = ChiselSession(self, ws)
        self.sessions[session.id] = session
        log.info("session#%d: Handshaking with %s...", session.id, session.peer)
        session.event("connected", session.peer)
        try:
            await session.run()
        except Exception:
            log.exception("session#%d crashed", session.id)
        finally:
            session.on_ssh_closed(None)
            self.sessions.pop(session.id, None)
            if ws.transport is not None:
                ws.transport.abort()

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await serve(
            self._handler, self.settings.host, self.port,
            process_request=self._process_request, process_response=self._process_response,
            server_header=None, compression=None, subprotocols=None, ping_interval=None,
            max_size=MAX_WS_MESSAGE, max_queue=64, open_timeout=45, close_timeout=1,
            reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("tunnel: Fingerprint %s", self.settings.fingerprint)
        log.info("tunnel: Listening on %s", self.url)

    def drop_all(self) -> int:
        """Cut every tunnel TCP connection at once (the peer sees close 1006)."""
        sessions = list(self.sessions.values())
        for session in sessions:
            if session.transport is not None:
                session.transport.drop()
            elif session.ws.transport is not None:
                session.ws.transport.abort()
        return len(sessions)

    async def stop(self) -> None:
        """Stop listening and drop all sessions (a restart keeps the same host key)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close(close_connections=False)
        self.drop_all()
        try:
            await asyncio.wait_for(server.wait_closed(), 5)
        except asyncio.TimeoutError:
            log.warning("tunnel listener did not close within 5 s")
        log.info("tunnel: stopped")

    async def probe(self, target: str) -> dict:
        """A `chisel` channel with `target` on the newest ready session (see tunnel.probe_channel)."""
        ready = [s for s in self.sessions.values() if s.state == "ready" and s.conn is not None]
        if not ready:
            return {"error": "no ready session"}
        return await probe_channel(ready[-1].conn, target)

    def set_frozen(self, frozen: bool) -> int:
        for session in self.sessions.values():
            if session.transport is not None:
                session.transport.frozen = frozen
        return len(self.sessions)
