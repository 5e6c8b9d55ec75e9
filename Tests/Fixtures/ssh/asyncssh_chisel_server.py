#!/usr/bin/env python3
"""A chisel-shaped SSH test server on asyncssh (an independent SSH implementation).

It speaks what the chisel-v3 protocol needs from our client (docs/chisel-v3-protocol.md 3-8):
banner `SSH-chisel-v3-server`, one ECDSA P-256 host key, password auth after `none`, the
global request `config` answered with success or failure + raw error text, `ping` answered
with raw `pong`, and server-opened channels of type `chisel` with the raw target after the
standard fields. Usage: asyncssh_chisel_server.py PASSWORD. Prints `PORT <n>` and
`FINGERPRINT <base64 sha256>` on stdout, then reports test results as global requests
`result` (want_reply false, raw text) to the client.
"""
import asyncio
import base64
import hashlib
import json
import sys

import asyncssh
from asyncssh.connection import SSHServerConnection
from asyncssh.constants import MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS
from asyncssh.packet import String

PASSWORD = sys.argv[1] if len(sys.argv) > 1 else "secret"


def _send_version(self):
    version = b"SSH-chisel-v3-server"
    self._server_version = version
    self.set_extra_info(server_version=version.decode("ascii"))
    self._send(version + b"\r\n")


def _reply_raw(self, ok, data):
    """Like _report_global_response, but failure carries raw bytes (as x/crypto does)."""
    _, _, want_reply = self._global_request_queue.pop(0)
    if want_reply:
        self.send_packet(MSG_REQUEST_SUCCESS if ok else MSG_REQUEST_FAILURE, data)
    if self._global_request_queue:
        self._service_next_global_request()


def _process_ping_global_request(self, packet):
    _reply_raw(self, True, b"pong")


def _process_config_global_request(self, packet):
    raw = packet.get_remaining_payload()
    try:
        config = json.loads(raw)
    except ValueError:
        _reply_raw(self, False, b"server: invalid config")
        return
    remotes = config.get("Remotes", [])
    if any(r.get("LocalPort") == "1" for r in remotes):
        _reply_raw(self, False, b"server: Server cannot listen on R:1=>" + remotes[0].get("RemotePort", "").encode())
        return
    _reply_raw(self, True, b"")
    self.create_task(exercise(self, remotes))


SSHServerConnection._send_version = _send_version
SSHServerConnection._process_ping_global_request = _process_ping_global_request
SSHServerConnection._process_config_global_request = _process_config_global_request


def report(conn, text):
    conn._send_global_request(b"result", text.encode(), want_reply=False)


async def open_chisel(conn, target):
    """Opens a `chisel` channel with the raw target after the standard fields."""
    chan = conn.create_tcp_channel()
    session = await chan._open_forward(asyncssh.SSHTCPSession, b"chisel", target.encode())
    return chan, session


class Collect(asyncssh.SSHTCPSession):
    def __init__(self):
        self.data = bytearray()
        self.closed = asyncio.get_event_loop().create_future()

    def data_received(self, data, datatype):
        self.data += data

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)


async def exercise(conn, remotes):
    try:
        # A rejected open: the client has no socks remote.
        try:
            chan = conn.create_tcp_channel()
            await chan._open_forward(Collect, b"chisel", b"socks")
            report(conn, "socks: accepted (unexpected)")
        except asyncssh.ChannelOpenError as e:
            report(conn, f"socks: rejected {e.code} {e.reason}")
        # An accepted open, bridged by the client to its echo target: send, read back.
        target = f"{remotes[0]['RemoteHost']}:{remotes[0]['RemotePort']}"
        chan = conn.create_tcp_channel()
        session = await chan._open_forward(Collect, b"chisel", target.encode())
        payload = bytes((i * 7 + i // 251) & 0xFF for i in range(1 << 20))
        chan.write(payload)
        for _ in range(400):
            if len(session.data) >= len(payload):
                break
            await asyncio.sleep(0.025)
        ok = bytes(session.data) == payload
        chan.close()
        report(conn, f"echo: {'ok' if ok else 'bad'} {len(session.data)}")
        # Our own ping to the client.
        result, packet = await conn._make_global_request(b"ping")
        report(conn, f"ping: {result == MSG_REQUEST_SUCCESS} {packet.get_remaining_payload().decode()}")
    except Exception as e:  # report, so the test fails with the reason
        report(conn, f"error: {e!r}")


class Server(asyncssh.SSHServer):
    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return True

    def validate_password(self, username, password):
        return password == PASSWORD


async def main():
    key = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
    blob = key.public_data
    print("FINGERPRINT " + base64.b64encode(hashlib.sha256(blob).digest()).decode(), flush=True)
    server = await asyncssh.create_server(Server, "127.0.0.1", 0, server_host_keys=[key],
                                          kex_algs=["curve25519-sha256", "ecdh-sha2-nistp256"])
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
