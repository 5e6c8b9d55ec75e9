"""asyncssh adapted to chisel-v3 (shared by the test tunnel server and the self-test client).

chisel runs a plain SSH-2 session over a WebSocket, with a few non-standard details that stock
asyncssh refuses or cannot express (docs/chisel-v3-protocol.md sections 2, 3.1, 6-8):

* banners `SSH-chisel-v3-server` / `SSH-chisel-v3-client` (asyncssh sends `SSH-2.0-...` and
  rejects any peer banner that is not `SSH-2.0-`/`SSH-1.99-`);
* global requests whose payload after want_reply is raw bytes (the `config` JSON) and whose
  replies carry raw bytes after the message byte (REQUEST_FAILURE + error text, SUCCESS + `pong`);
* channels of type `chisel` whose type-specific data is a raw `host:port` string.

The hooks used, all in asyncssh 2.24 (connection.py / channel.py):
* `SSHConnection._send_version` / `_recv_version`: overridden (`ChiselVersionMixin`) to send the
  chisel banner and to accept any peer line that starts with `SSH-` (x/crypto's rule).
* `SSHConnection._process_global_request`: overridden by the subclasses so that they see the
  raw remaining payload and answer with `reply_global()`, which writes the raw data themselves
  (asyncssh's own queue would answer unknown requests with FAILURE, chisel never answers them).
  asyncssh dispatches packets through the class-level dict `_packet_handlers` (plain
  functions), so each subclass also rebinds MSG_GLOBAL_REQUEST in a copy of that dict.
* `SSHConnection._make_global_request(name, *args)`: used as is; it hands back the raw reply packet.
* `SSHChannel._open(chantype, *args)` (via `SSHForwardChannel._open_forward`): used as is with the
  raw target as the only arg, which gives exactly `string "chisel", uint32 x3, raw target`.
* `_process_chisel_open(packet)`: asyncssh dispatches channel opens by type name to
  `_process_<type>_open`; the packet is positioned at the raw extra data.

`WSTransport` turns a websockets connection into the asyncio.Transport asyncssh expects:
each `write()` becomes one binary message (like chisel's net.Conn wrapper), and the payload of
every received message (binary or text) is fed to the protocol as stream bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from typing import Any, Optional

import asyncssh
from asyncssh.constants import MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS
from asyncssh.misc import ProtocolError, ProtocolNotSupported

log = logging.getLogger("chisel-ssh")

SERVER_BANNER = b"SSH-chisel-v3-server"
CLIENT_BANNER = b"SSH-chisel-v3-client"

_MAX_BANNER_LINE = 8192
_MAX_VERSION_LINE = 255

# x/crypto v0.48 (chisel v1.11.4+) server lists, filtered by what asyncssh supports.
# asyncssh appends ext-info-s and kex-strict-s-v00@openssh.com itself.
KEX_PROFILES = {
    "head": ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org",
             "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
             "diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1"],
    "v1.11.0": ["curve25519-sha256", "curve25519-sha256@libssh.org",
                "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
                "diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1"],
    # v1.10.x: x/crypto v0.16, the same list but without strict KEX (see ChiselServerMixin).
    "v1.10": ["curve25519-sha256", "curve25519-sha256@libssh.org",
              "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
              "diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1"],
}
CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
           "aes128-ctr", "aes192-ctr", "aes256-ctr"]
MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256",
        "hmac-sha2-512", "hmac-sha1", "hmac-sha1-96"]

# chisel's channel parameters (x/crypto: window 64 * 32768, packet 32768).
CHANNEL_WINDOW = 2097152
CHANNEL_MAX_PACKET = 32768

_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def key_from_seed(seed: str) -> asyncssh.SSHKey:
    """The ECDSA P-256 key chisel derives from `--key <seed>`.

    chisel's ccrypto: a SHA-512 chain strengthened 2048 times, then Go 1.19's
    randFieldElement (40 bytes, k = b mod (N-1) + 1). `testseed` gives the fingerprint
    r7LNBdVzSS2DaRPmLtRsZV5OtFFTZEpMmbQ3QiEFIbQ= (protocol doc 3.2).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    nxt = seed.encode()
    for _ in range(2048):
        nxt = hashlib.sha512(nxt).digest()[:32]
    out = b""
    while len(out) < 40:
        digest = hashlib.sha512(nxt).digest()
        nxt, out = digest[:32], out + digest[32:]
    k = int.from_bytes(out[:40], "big") % (_P256_N - 1) + 1
    priv = ec.derive_private_key(k, ec.SECP256R1())
    pem = priv.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    return asyncssh.import_private_key(pem)


def new_host_key(seed: Optional[str]) -> asyncssh.SSHKey:
    if seed:
        return key_from_seed(seed)
    return asyncssh.generate_private_key("ecdsa-sha2-nistp256")


def fingerprint(key: asyncssh.SSHKey) -> str:
    """base64 (std, padded) of SHA-256 over the SSH public key blob, as chisel prints it."""
    return base64.b64encode(hashlib.sha256(key.public_data).digest()).decode()


class ChiselVersionMixin:
    """Banner exchange with chisel's version strings (protocol doc 3.1)."""

    chisel_banner = SERVER_BANNER

    def _send_version(self) -> None:  # overrides SSHConnection._send_version
        version = self.chisel_banner
        if self.is_client():
            self._client_version = version
            self.set_extra_info(client_version=version.decode("ascii"))
        else:
            self._server_version = version
            self.set_extra_info(server_version=version.decode("ascii"))
        self._send(version + b"\r\n")

    def _recv_version(self) -> bool:  # overrides SSHConnection._recv_version
        # Same as asyncssh's, except that any line starting with "SSH-" is accepted as the
        # version (x/crypto only requires that prefix); earlier non-"SSH-" lines are skipped.
        idx = self._inpbuf.find(b"\n", 0, _MAX_BANNER_LINE)
        if idx < 0:
            if len(self._inpbuf) >= _MAX_BANNER_LINE:
                self._force_close(ProtocolError("Banner line too long"))
            return False
        version = self._inpbuf[:idx]
        if version.endswith(b"\r"):
            version = version[:-1]
        self._inpbuf = self._inpbuf[idx + 1:]
        if not version.startswith(b"SSH-"):
            self._banner_lines += 1
            if self._banner_lines > 1024:
                self._force_close(ProtocolError("Too many banner lines"))
                return False
            return True
        if len(version) > _MAX_VERSION_LINE:
            self._force_close(ProtocolNotSupported("Version too long"))
            return False
        try:
            text = version.decode("ascii")
        except UnicodeDecodeError:
            self._force_close(ProtocolNotSupported("Non-ASCII version"))
            return False
        if self.is_server():
            self._client_version = version
            self.set_extra_info(client_version=text)
        else:
            self._server_version = version
            self.set_extra_info(server_version=text)
        self.on_peer_version(text)
        self._send_kexinit()
        self._kexinit_sent = True
        self._recv_handler = self._recv_pkthdr
        return True

    def on_peer_version(self, text: str) -> None:
        """Hook for subclasses (record the peer banner)."""

    def reply_global(self, ok: bool, data: bytes = b"") -> None:
        """REQUEST_SUCCESS/FAILURE followed by raw data, as x/crypto's Reply(ok, payload) does."""
        self.send_packet(MSG_REQUEST_SUCCESS if ok else MSG_REQUEST_FAILURE, data)

    async def global_request(self, name: bytes, payload: bytes = b"") -> tuple[bool, bytes]:
        """Send a want_reply global request with a raw payload; return (ok, raw reply data)."""
        args = (payload,) if payload else ()
        pkttype, packet = await self._make_global_request(name, *args)
        return pkttype == MSG_REQUEST_SUCCESS, packet.get_remaining_payload()


class WSTransport(asyncio.Transport):
    """asyncio.Transport over a websockets connection: one write() = one binary message."""

    def __init__(self, ws: Any, protocol: asyncio.Protocol, max_queue_bytes: int = 64 << 20):
        super().__init__(extra={"peername": ws.remote_address, "sockname": ws.local_address})
        self._ws = ws
        self._protocol = protocol
        self._queue: asyncio.Queue[Optional[bytes]] = asyncio.Queue()
        self._queued = 0
        self._max_queue = max_queue_bytes
        self._closing = False
        # Test hook: while frozen nothing is sent or read (a stalled path: the peer's pings go
        # unanswered, TCP stays up); writes queue up (bounded) and flow again on thaw.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.bytes_in = 0
        self.bytes_out = 0
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    # -- asyncio.Transport -------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return not self._flowing.is_set()

    @frozen.setter
    def frozen(self, value: bool) -> None:
        if value:
            self._flowing.clear()
        else:
            self._flowing.set()

    def write(self, data: bytes) -> None:
        if self._closing or not data:
            return
        self._queued += len(data)
        if self._queued > self._max_queue:
            log.warning("websocket peer %s not reading: %d bytes queued, aborting",
                        self._ws.remote_address, self._queued)
            self.drop()
            return
        self._queue.put_nowait(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)  # flush what is queued, then drop the TCP connection

    def abort(self) -> None:
        # asyncssh aborts after queueing its last packets; flush them, then drop TCP without
        # a close frame, as chisel does when its SSH connection ends (peer sees 1006).
        self.close()

    def get_write_buffer_size(self) -> int:
        return self._queued

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self._closing

    # -- pumps ---------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self._queue.get()
                if data is None:
                    break
                if not self._flowing.is_set():
                    await self._flowing.wait()
                self._queued -= len(data)
                self.bytes_out += len(data)
                await self._ws.send(data)
        except Exception as exc:  # peer gone: the read loop reports the loss
            log.debug("websocket write ended: %r", exc)
        finally:
            self._closing = True
            self.drop()

    def drop(self) -> None:
        """Close the TCP connection at once, without a WebSocket close frame."""
        self._closing = True
        self._flowing.set()  # release pumps parked by a freeze so they see the loss
        transport = getattr(self._ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def read_loop(self) -> None:
        """Feed every received message into the protocol until the WebSocket ends."""
        exc: Optional[Exception] = None
        try:
            while True:
                if not self._flowing.is_set():
                    await self._flowing.wait()
                msg = await self._ws.recv(decode=False)
                if not self._flowing.is_set():
                    await self._flowing.wait()
                self.bytes_in += len(msg)
                self._protocol.data_received(msg)
        except Exception as err:  # ConnectionClosed or transport errors
            exc = err
        finally:
            self._closing = True
            self._queue.put_nowait(None)
            try:
                self._protocol.connection_lost(None if exc is None else ConnectionError(str(exc)))
            except Exception:
                log.exception("connection_lost handler failed")
