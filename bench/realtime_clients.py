"""Subscribers for bench/realtime_bench.py: many WebSocket clients per process, written on raw
sockets (RFC 6455 client side: handshake with Sec-WebSocket-Accept check, masked frames out,
unmasked frames in, pings answered) so the measuring side costs a few microseconds a message and
the servers, not the clients, are what the bench sees. Each client subscribes to `events` as
the hub protocol says and records, with the system-wide monotonic clock, when each
`forward_opened` and `forward_closed` event reached its socket, and for each `forward_opened`
how long after the server stamped it (its `timestamp`, in milliseconds, against the wall clock)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
import os
import selectors
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Subscriber:
    def __init__(self, port: int, path: str, token: str | None, deadline: float):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=max(1.0, deadline - time.monotonic()))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise ConnectionError(f"upgrade refused: {lines[0]}")
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if not any(l.lower().startswith("sec-websocket-accept:") and l.split(":", 1)[1].strip() == accept for l in lines):
            raise ConnectionError("bad Sec-WebSocket-Accept")
        self.opened: list[float] = []
        self.closed: list[float] = []
        self.stamped: list[float] = []   # per forward_opened: wall clock at arrival minus the event's timestamp
        self.messages = 0
        self.close_code: int | None = None
        self.subscribed = False
        self.send_text(json.dumps({"type": "subscribe", "data": {"topics": ["events"]}}))

    def send_text(self, text: str) -> None:
        self.sock.sendall(masked_frame(0x1, text.encode()))

    def readable(self) -> bool:
        """Reads what is there; False once the server closed."""
        try:
            chunk = self.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        now, wall = time.monotonic(), time.time()
        if not chunk:
            return False
        buf = self.buf + chunk
        i = 0
        while True:
            if len(buf) - i < 2:
                break
            b0, b1 = buf[i], buf[i + 1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if len(buf) - i < 4:
                    break
                n, h = struct.unpack_from("!H", buf, i + 2)[0], 4
            elif n == 127:
                if len(buf) - i < 10:
                    break
                n, h = struct.unpack_from("!Q", buf, i + 2)[0], 10
            if len(buf) - i < h + n:
                break
            payload = buf[i + h:i + h + n]
            i += h + n
            op = b0 & 0x0F
            if op == 0x1:
                self.messages += 1
                if b'"forward_opened"' in payload:
                    self.opened.append(now)
                    stamp = json.loads(payload)["data"]["timestamp"]
                    self.stamped.append(wall - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
                elif b'"forward_closed"' in payload:
                    self.closed.append(now)
                elif b'"subscribed"' in payload:
                    self.subscribed = True
            elif op == 0x9:
                self.sock.sendall(masked_frame(0xA, payload))
            elif op == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return False
        self.buf = buf[i:]
        return True


def run(port: int, path: str, token: str | None, count: int, conn) -> None:
    """Worker process: `count` subscribers; says "ready" once all are subscribed, then reads until
    the parent says "stop", and sends back each subscriber's arrival times."""
    deadline = time.monotonic() + 30
    subs: list[Subscriber] = []
    try:
        for _ in range(count):
            subs.append(Subscriber(port, path, token, deadline))
    except Exception as exc:  # the parent reports it
        conn.send(("error", f"subscriber {len(subs) + 1}: {exc}"))
        return
    sel = selectors.DefaultSelector()
    for s in subs:
        s.sock.setblocking(False)
        sel.register(s.sock, selectors.EVENT_READ, s)
    sel.register(conn, selectors.EVENT_READ, None)
    ready_sent = False
    live = set(subs)
    while True:
        if not ready_sent and all(s.subscribed for s in subs):
            conn.send(("ready", None))
            ready_sent = True
        if not ready_sent and time.monotonic() > deadline:
            conn.send(("error", "subscribers not all subscribed within 30 s"))
            return
        for key, _ in sel.select(timeout=0.5):
            if key.data is None:
                if conn.recv() == "stop":
                    conn.send(("done", [(s.opened, s.closed, s.stamped, s.close_code) for s in subs]))
                    for s in subs:
                        s.sock.close()
                    return
                continue
            s = key.data
            if s in live and not s.readable():
                live.discard(s)
                sel.unregister(s.sock)
