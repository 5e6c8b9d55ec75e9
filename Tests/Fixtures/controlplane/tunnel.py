"""A chisel-v3 compatible tunnel server (reverse remotes), for tests.

Wire behaviour follows docs/chisel-v3-protocol.md sections 1-8 and 15 (HTTP/WebSocket handshake,
SSH over WebSocket, banner, ECDSA P-256 host key, password auth, `config`/`ping` global requests
with raw payloads, `chisel` channels with raw target, pipe without half-close).
Deviations, on purpose, for a test machine: wildcard bind hosts (`0.0.0.0`, `""`, `::`) are
mapped to the server's own --host (loopback); UDP and forward (client -> server) remotes are not
supported (UDP gets "Server cannot listen", forward channel opens are rejected).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Optional

import asyncssh
from asyncssh.misc import ChannelOpenError

from chisel_ssh import CHANNEL_MAX_PACKET, CHANNEL_WINDOW, fingerprint, new_host_key

log = logging.getLogger("tunnel")

SERVER_VERSION = "1.11.5"
PROTOCOL = "chisel-v3"
MAX_WS_MESSAGE = 1 << 20  # chisel sets no limit; SSH packets are < 40 KB, so 1 MiB is plenty
CONFIG_FIELDS = ["LocalHost", "LocalPort", "LocalProto", "RemoteHost", "RemotePort",
                 "RemoteProto", "Socks", "Reverse", "Stdio"]
_WILDCARD = {"", "0.0.0.0", "::", "[::]"}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class TunnelSettings:
    """Everything a test may change at run time (through /_test/tunnel/settings)."""

    def __init__(self, host: str, user: Optional[str], password: Optional[str], keepalive: float,
                 key_seed: Optional[str]):
        self.host = host
        self.user = user
        self.password = password if password is not None else ""
        self.acl: list[str] = []  # regexes for the configured user; empty = allow everything
        self.keepalive = keepalive
        self.ping_timeout = 0.0  # released chisel has none (doc 8); >0 closes on a late pong
        self.config_timeout = 10.0
        self.answer_pings = True
        self.reverse = True
        self.kex_profile = "head"
        self.key_seed = key_seed
        self.host_key = new_host_key(key_seed)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key)

    def public(self) -> dict:
        return {"user": self.user, "password": self.password, "acl": self.acl,
                "keepalive": self.keepalive, "ping_timeout": self.ping_timeout,
                "config_timeout": self.config_timeout, "answer_pings": self.answer_pings,
                "reverse": self.reverse, "kex_profile": self.kex_profile,
                "key_seed": self.key_seed, "fingerprint": self.fingerprint}


# -- config decoding with Go encoding/json semantics -------------------------------------------

class ConfigError(Exception):
    pass


def _go_assign(target: dict, fields: dict, obj: Any) -> None:
    """Fill `target` from JSON object `obj` the way Go decodes into a struct:
    names matched exactly or else case-insensitively, unknown keys ignored, null leaves the
    zero value, a wrong type is an error."""
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise ConfigError("not an object")
    for key, value in obj.items():
        name = key if key in fields else next((f for f in fields if f.lower() == key.lower()), None)
        if name is None or value is None:
            continue
        kind = fields[name]
        if kind is str and not isinstance(value, str):
            raise ConfigError(f"{name}: not a string")
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{name}: not a bool")
        if kind is list and not isinstance(value, list):
            raise ConfigError(f"{name}: not an array")
        target[name] = value


def decode_config(raw: bytes) -> dict:
    def no_constants(name: str) -> Any:
        raise ConfigError(f"invalid JSON constant {name}")
    try:
        obj = json.loads(raw.decode("utf-8", errors="replace"), parse_constant=no_constants)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(str(exc)) from None
    config = {"Version": "", "Remotes": []}
    _go_assign(config, {"Version": str, "Remotes": list}, obj)
    remotes = []
    for item in config["Remotes"]:
        if item is None:
            raise ConfigError("null remote")  # a nil *Remote would crash the Go server
        remote = {f: (False if f in ("Socks", "Reverse", "Stdio") else "") for f in CONFIG_FIELDS}
        _go_assign(remote, {f: type(v) for f, v in remote.items()}, item)
        remotes.append(remote)
    config["Remotes"] = remotes
    return config


def config_shape_problems(raw: bytes) -> list[str]:
    """Differences from what the Go client sends (exact names, order, all 9 fields)."""
    try:
        pairs = json.loads(raw, object_pairs_hook=lambda p: p)
    except ValueError:
        return ["config is not JSON"]
    problems = []
    if not isinstance(pairs, list) or [k for k, _ in pairs] != ["Version", "Remotes"]:
        return ["config top level must be exactly {\"Version\",\"Remotes\"} in that order"]
    top = dict(pairs)
    if not isinstance(top["Version"], str) or not top["Version"]:
        problems.append("Version must be a non-empty string")
    if not isinstance(top["Remotes"], list) or not top["Remotes"]:
        return problems + ["Remotes must be a non-empty array"]
    for i, remote in enumerate(top["Remotes"]):
        keys = [k for k, _ in remote] if isinstance(remote, list) else None
        if keys != CONFIG_FIELDS:
            problems.append(f"Remotes[{i}] fields {keys} != {CONFIG_FIELDS}")
            continue
        r = dict(remote)
        for f in CONFIG_FIELDS[:6]:
            if not isinstance(r[f], str):
                problems.append(f"Remotes[{i}].{f} must be a string")
        for f in CONFIG_FIELDS[6:]:
            if not isinstance(r[f], bool):
                problems.append(f"Remotes[{i}].{f} must be a bool")
        if r.get("Reverse") is not True:
            problems.append(f"Remotes[{i}].Reverse must be true")
        if r.get("LocalProto") != "tcp" or r.get("RemoteProto") != "tcp":
            problems.append(f"Remotes[{i}] protocols must be \"tcp\"")
    return problems


def remote_local(r: dict) -> str:
    return ("stdio" if r["Stdio"] else (r["LocalHost"] or "0.0.0.0") + ":" + r["LocalPort"])


def remote_target(r: dict) -> str:
    return "socks" if r["Socks"] else (r["RemoteHost"] or "127.0.0.1") + ":" + r["RemotePort"]


def remote_display(r: dict) -> str:
    """chisel's Remote.String() (protocol doc 6.4)."""
    local = remote_local(r)
    target = remote_target(r)
    text = ("R:" if r["Reverse"] else "") + (local[8:] if local.startswith("0.0.0.0:") else local)
    text += "=>" + (target[10:] if target.startswith("127.0.0.1:") else target)
    return text + ("/udp" if r["RemoteProto"] == "udp" else "")


def user_addr(r: dict) -> str:
    if r["Reverse"]:
        return "R:" + r["LocalHost"] + ":" + r["LocalPort"]
    return r["RemoteHost"] + ":" + r["RemotePort"]


# -- reverse listeners and pipes ---------------------------------------------------------------

class ChanSide(asyncssh.SSHTCPSession):
    """SSH side of one piped connection."""

    def __init__(self, pipe: "TcpSide"):
        self.pipe = pipe

    def connection_made(self, chan: Any) -> None:
        self.pipe.chan = chan

    def data_received(self, data: bytes, datatype: Any) -> None:
        self.pipe.bytes_out += len(data)
        if self.pipe.transport and not self.pipe.transport.is_closing():
            self.pipe.transport.write(data)

    def eof_received(self) -> bool:
        self.pipe.close_both("channel EOF")  # chisel treats EOF as a full close (doc 7.2)
        return True

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.pipe.close_both("channel closed")

    def pause_writing(self) -> None:
        if self.pipe.transport:
            self.pipe.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.pipe.transport and not self.pipe.transport.is_closing():
            self.pipe.transport.resume_reading()


class TcpSide(asyncio.Protocol):
    """TCP side: one accepted connection on a reverse listener, piped to a `chisel` channel."""

    def __init__(self, listener: "ReverseListener"):
        self.listener = listener
        self.transport: Optional[asyncio.Transport] = None
        self.chan: Any = None
        self.closed = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.id = next(listener.session.server.conn_ids)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.pause_reading()  # type: ignore[attr-defined]
        self.listener.active.add(self)
        self.listener.session.server.spawn(self.open_channel())

    async def open_channel(self) -> None:
        conn = self.listener.session.conn
        target = self.listener.target.encode()
        try:
            chan = conn.create_tcp_channel(window=CHANNEL_WINDOW, max_pktsize=CHANNEL_MAX_PACKET)
            # _open_forward sends CHANNEL_OPEN "chisel", ids/window/packet, then `target` raw.
            await chan._open_forward(lambda: ChanSide(self), b"chisel", target)
        except ChannelOpenError as exc:
            log.info("conn#%d: Stream error: ssh: rejected: %s (%s)", self.id,
                     _reject_name(exc.code), exc.reason)
            self.close_both("open rejected")
            return
        except Exception as exc:
            log.info("conn#%d: Stream error: %r", self.id, exc)
            self.close_both("open failed")
            return
        if self.closed:
            self.chan.close()
            return
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.chan is not None:
            self.chan.write(data)

    def eof_received(self) -> bool:
        self.close_both("tcp EOF")
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.close_both("tcp closed")

    def pause_writing(self) -> None:
        if self.chan is not None:
            self.chan.pause_reading()

    def resume_writing(self) -> None:
        if self.chan is not None:
            self.chan.resume_reading()

    def close_both(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.debug("conn#%d: Close [%s] sent %d received %d", self.id, why, self.bytes_in,
                  self.bytes_out)
        self.listener.active.discard(self)
        if self.transport is not None:
            self.transport.close()  # flushes what the channel already delivered
        if self.chan is not None:
            self.chan.close()  # CLOSE only, no EOF first (as x/crypto's Close)


def _reject_name(code: int) -> str:
    return {1: "administratively prohibited", 2: "connect failed", 3: "unknown channel type",
            4: "resource shortage"}.get(code, f"unknown reason {code}")


class ReverseListener:
    def __init__(self, session: "ChiselSession", remote: dict):
        self.session = session
        self.remote = remote
        self.display = remote_display(remote)
        self.target = remote_target(remote)
        self.server: Optional[asyncio.base_events.Server] = None
        self.active: set[TcpSide] = set()
        self.port = 0

    async def start(self) -> None:
        host, port = self.session.server.bind_address(self.remote)
        self.server = await asyncio.get_running_loop().create_server(
            lambda: TcpSide(self), host, port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        self.host = host
        log.info("session#%d: tun: proxy#%s: Listening on %s:%d", self.session.id, self.display,
                 host, self.port)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for pipe in list(self.active):
            pipe.close_both("session ended")

    def info(self) -> dict:
        return {"session": self.session.id, "display": self.display, "local_host": self.host,
                "local_port": self.port, "requested_host": self.remote["LocalHost"],
                "requested_port": self.remote["LocalPort"], "target": self.target,
                "active_connections": len(self.active)}


async def probe_channel(conn: Any, target: str) -> dict:
    """Opens one `chisel` channel with an arbitrary target on a ready session, as a server whose
    config were tampered with would, and reports whether the client accepted it. Used to check
    that the agent refuses targets it was not configured for."""
    class Probe(asyncssh.SSHTCPSession):
        def __init__(self) -> None:
            self.chan: Any = None

        def connection_made(self, chan: Any) -> None:
            self.chan = chan

    chan = conn.create_tcp_channel(window=CHANNEL_WINDOW, max_pktsize=CHANNEL_MAX_PACKET)
    try:
        await chan._open_forward(Probe, b"chisel", target.encode())
    except ChannelOpenError as exc:
        return {"accepted": False, "code": exc.code, "reason": exc.reason}
    chan.close()
    return {"accepted": True}
