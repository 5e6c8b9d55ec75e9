"""A minimal chisel-v3 client (reverse remotes only), built from websockets + asyncssh.

Used by selftest.py to check the tunnel server; it follows the client checklist of
docs/chisel-v3-protocol.md section 15: subprotocol `chisel-v3` and a 101 without subprotocol,
banner `SSH-chisel-v3-client`, password auth, `config` with the Go client's exact 9-field JSON,
raw reply parsing (non-empty data = rejected), `ping` answered with `pong`, `chisel` channels
whose raw extra data is the dial target, and close-both-ends on the first EOF.
Note: the host key is checked after the handshake (fine for a test, not for production).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Optional

import asyncssh
from asyncssh.constants import MSG_GLOBAL_REQUEST
from asyncssh.misc import ChannelOpenError
from websockets.asyncio.client import connect as ws_connect

from chisel_ssh import (CHANNEL_MAX_PACKET, CHANNEL_WINDOW, CLIENT_BANNER, ChiselVersionMixin,
                        WSTransport, fingerprint)

log = logging.getLogger("chisel-client")


def go_config(remotes: list[dict], version: str = "1.11.5") -> bytes:
    """The config JSON exactly as the Go client writes it (field order included)."""
    fields = []
    for r in remotes:
        fields.append({"LocalHost": r.get("LocalHost", "0.0.0.0"), "LocalPort": r["LocalPort"],
                       "LocalProto": r.get("LocalProto", "tcp"),
                       "RemoteHost": r.get("RemoteHost", "127.0.0.1"),
                       "RemotePort": r["RemotePort"], "RemoteProto": r.get("RemoteProto", "tcp"),
                       "Socks": False, "Reverse": True, "Stdio": False})
    return json.dumps({"Version": version, "Remotes": fields}, separators=(",", ":")).encode()


class ClientPipe(asyncssh.SSHTCPSession):
    """One `chisel` channel from the server: dial the target, pipe, close both on first EOF."""

    def __init__(self, target: str, stats: dict):
        self.target = target
        self.stats = stats
        self.chan: Any = None
        self.transport: Optional[asyncio.Transport] = None
        self.pending: list[bytes] = []
        self.closed = False

    def connection_made(self, chan: Any) -> None:
        self.chan = chan
        asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        host, _, port = self.target.rpartition(":")
        pipe = self

        class Side(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                pipe.chan.write(data)

            def eof_received(self) -> bool:
                pipe.close_both()
                return False

            def connection_lost(self, exc: Optional[Exception]) -> None:
                pipe.close_both()

        try:
            self.transport, _ = await asyncio.get_running_loop().create_connection(
                Side, host.strip("[]"), int(port))
        except (OSError, ValueError) as exc:
            log.info("dial %s failed: %s", self.target, exc)
            self.close_both()
            return
        self.stats["dialed"] = self.stats.get("dialed", 0) + 1
        for data in self.pending:
            self.transport.write(data)
        self.pending = []
        if self.closed:
            self.transport.close()

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.write(data)

    def eof_received(self) -> bool:
        self.close_both()
        return True

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.close_both()

    def close_both(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.chan is not None:
            self.chan.close()


class ChiselClientConnection(ChiselVersionMixin, asyncssh.SSHClientConnection):
    chisel_banner = CLIENT_BANNER
    stats: dict
    has_reverse: bool

    def _process_global_request(self, _pkttype: int, _pktid: int, packet: Any) -> None:
        name = packet.get_string()
        want_reply = packet.get_boolean()
        if name == b"ping":
            self.stats["server_pings"] = self.stats.get("server_pings", 0) + 1
            if want_reply:
                self.reply_global(True, b"pong")
        elif want_reply:
            self.reply_global(False)

    # asyncssh dispatches through this class-level table, so point it at the override.
    _packet_handlers = {**asyncssh.SSHClientConnection._packet_handlers,
                        MSG_GLOBAL_REQUEST: _process_global_request}

    def _process_chisel_open(self, packet: Any) -> tuple:
        target = packet.get_remaining_payload().decode("utf-8", errors="replace")
        self.stats.setdefault("targets", []).append(target)
        if not self.has_reverse:
            raise ChannelOpenError(1, "Denied outbound connection")
        chan = self.create_tcp_channel(window=CHANNEL_WINDOW, max_pktsize=CHANNEL_MAX_PACKET)
        return chan, ClientPipe(target, self.stats)


class ChiselClient:
    def __init__(self) -> None:
        self.ws: Any = None
        self.conn: Optional[ChiselClientConnection] = None
        self.transport: Optional[WSTransport] = None
        self.read_task: Optional[asyncio.Task] = None
        self.stats: dict = {}
        self.fingerprint = ""
        self.response_headers: dict = {}

    async def connect(self, url: str, user: str, password: str,
                      expect_fingerprint: Optional[str] = None, has_reverse: bool = True,
                      ssl_context: Any = None) -> None:
        """`ssl_context`: for wss, as chisel's --tls-ca / --tls-skip-verify would set it."""
        ws_url = "ws" + url[4:] if url.startswith("http") else url
        self.ws = await ws_connect(
            ws_url, additional_headers={"Sec-WebSocket-Protocol": "chisel-v3"},
            compression=None, user_agent_header="Go-http-client/1.1", ping_interval=None,
            max_size=1 << 20, open_timeout=10, ssl=ssl_context)
        self.response_headers = dict(self.ws.response.headers.raw_items())
        options = await asyncssh.SSHClientConnectionOptions.construct(
            config=None, username=user, password=password, known_hosts=None, client_keys=None,
            agent_path=None, public_key_auth=False, kbdint_auth=False, host_based_auth=False,
            gss_auth=False, gss_kex=False, password_auth=True, keepalive_interval=0,
            server_host_key_algs=["ecdsa-sha2-nistp256"],
            kex_algs=["curve25519-sha256", "ecdh-sha2-nistp256"],
            encryption_algs=["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
        loop = asyncio.get_running_loop()
        options.waiter = loop.create_future()
        conn = ChiselClientConnection(loop, options, wait="auth")
        conn.stats = self.stats
        conn.has_reverse = has_reverse
        self.conn = conn
        self.transport = WSTransport(self.ws, conn)
        conn.connection_made(self.transport)
        self.read_task = loop.create_task(self.transport.read_loop())
        await asyncio.wait_for(options.waiter, 15)
        key = conn.get_server_host_key()
        self.fingerprint = fingerprint(key) if key else ""
        if expect_fingerprint and self.fingerprint != expect_fingerprint:
            self.close()
            raise ConnectionError(f"Invalid fingerprint ({self.fingerprint})")

    async def send_config(self, config: bytes, timeout: float = 10) -> tuple[bool, str]:
        """Returns (accepted, error text); accepted iff the reply data is empty (Go rule)."""
        assert self.conn is not None
        ok, data = await asyncio.wait_for(self.conn.global_request(b"config", config), timeout)
        return (not data), data.decode("utf-8", errors="replace")

    async def request(self, name: bytes, payload: bytes = b"", timeout: float = 10) -> tuple:
        assert self.conn is not None
        return await asyncio.wait_for(self.conn.global_request(name, payload), timeout)

    async def wait_closed(self, timeout: float = 10) -> bool:
        if self.read_task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self.read_task), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def close(self) -> None:
        if self.transport is not None:
            self.transport.drop()
