"""`pipeops-agent tunnel-server` with an independent client on the other end: the asyncssh-based
chisel client of the control-plane double (Tests/Fixtures/controlplane/chisel_client.py), and raw
HTTP and WebSocket probes for the server's rules and limits (chisel-v3-protocol.md §5-6, §10, §12).
The agent through this server is covered by test_tunnel.py (its `tunnel_cp` tests)."""

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys

import asyncssh
import pytest
import requests
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness import (ROOT, SEED_FINGERPRINT, TUNNEL_PASSWORD, TUNNEL_USER, SwiftTunnelServer, echo_roundtrip,
                     free_port, pattern, wait_for)

sys.path.insert(0, os.path.join(ROOT, "Tests", "Fixtures", "controlplane"))
from chisel_client import ChiselClient, go_config  # noqa: E402


def remote(port: int, target_port: int, host: str = "127.0.0.1") -> dict:
    return {"LocalHost": host, "LocalPort": str(port), "RemotePort": str(target_port)}


async def connected(server: SwiftTunnelServer, user: str = TUNNEL_USER, password: str = TUNNEL_PASSWORD,
                    fingerprint: str = SEED_FINGERPRINT, **kw) -> ChiselClient:
    c = ChiselClient()
    await c.connect(server.url, user, password, expect_fingerprint=fingerprint, **kw)
    return c


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@pytest.fixture
def server(tmp_path):
    s = SwiftTunnelServer(str(tmp_path), extra=["--keepalive", "1s"])
    yield s
    s.stop()


def test_the_asyncssh_chisel_client_moves_data_both_ways_through_our_server(server, echo):
    async def body():
        c = await connected(server)
        port = free_port()
        assert await c.send_config(go_config([remote(port, echo.port)])) == (True, "")
        assert await c.request(b"ping") == (True, b"pong")
        data = pattern(8 << 20, seed=3)
        assert await in_thread(echo_roundtrip, port, data) == data
        many = await asyncio.gather(*[in_thread(echo_roundtrip, port, pattern(256 * 1024, seed=10 + i)) for i in range(20)])
        assert all(got == pattern(256 * 1024, seed=10 + i) for i, got in enumerate(many))
        assert c.stats["targets"][0] == f"127.0.0.1:{echo.port}"
        # The server pings too (--keepalive 1s), and the client's pongs keep the session up.
        await asyncio.wait_for(_until(lambda: c.stats.get("server_pings", 0) >= 2), 20)
        assert await in_thread(echo_roundtrip, port, b"still up") == b"still up"
        c.close()
    asyncio.run(body())


async def _until(pred) -> None:
    while not pred():
        await asyncio.sleep(0.05)


def test_wrong_password_is_refused_and_logged(server):
    async def body():
        with pytest.raises(asyncssh.PermissionDenied):
            await connected(server, password="wrong")
    asyncio.run(body())
    server.wait_log(lambda l: l.get("msg") == f"Login failed for user: {TUNNEL_USER}", what="login failure logged")


def test_key_sources_give_chiselss_fingerprints_and_a_client_refuses_another_key(tmp_path):
    # A PEM key from openssl: our fingerprint is OpenSSH's for the same key (the same blob chisel hashes).
    pem = tmp_path / "key.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pem)], check=True)
    os.chmod(pem, 0o600)
    pub = subprocess.run(["ssh-keygen", "-y", "-f", str(pem)], check=True, capture_output=True, text=True).stdout
    blob = base64.b64decode(pub.split()[1])
    import hashlib
    expected = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    s1 = SwiftTunnelServer(str(tmp_path), extra=["--keyfile", str(pem)], name="pem")
    # The same key as a chisel key (`ck-` + unpadded base64 of the SEC1 DER), inline.
    der = subprocess.run(["openssl", "ec", "-in", str(pem), "-outform", "DER"], check=True, capture_output=True).stdout
    ck = "ck-" + base64.b64encode(der).decode().rstrip("=")
    s2 = SwiftTunnelServer(str(tmp_path), extra=["--keyfile", ck], name="ck")
    s3 = SwiftTunnelServer(str(tmp_path), extra=["--key", "otherseed"], name="other")
    try:
        assert s1.fingerprint == expected and s2.fingerprint == expected
        assert s3.fingerprint not in (expected, SEED_FINGERPRINT)

        async def body():
            ok = await connected(s1, fingerprint=expected)
            ok.close()
            with pytest.raises(ConnectionError, match="Invalid fingerprint"):
                await connected(s3, fingerprint=SEED_FINGERPRINT)
        asyncio.run(body())
    finally:
        for s in (s1, s2, s3):
            s.stop()


def test_a_remote_the_user_may_not_bind_is_refused_and_not_bound(tmp_path, echo):
    allowed, denied = free_port(), free_port()
    users = tmp_path / "users.json"
    users.write_text(json.dumps({f"{TUNNEL_USER}:{TUNNEL_PASSWORD}": [f"^R:127\\.0\\.0\\.1:{allowed}$"]}))
    s = SwiftTunnelServer(str(tmp_path), auth=False, extra=["--authfile", str(users)])
    no_reverse = SwiftTunnelServer(str(tmp_path), reverse=False, name="no-reverse")
    try:
        async def body():
            c = await connected(s)
            assert await c.send_config(go_config([remote(denied, echo.port)])) == (
                False, f"server: access to 'R:127.0.0.1:{denied}' denied")
            assert refused(denied)
            c.close()
            c2 = await connected(s)
            assert await c2.send_config(go_config([remote(allowed, echo.port)])) == (True, "")
            assert await in_thread(echo_roundtrip, allowed, b"allowed") == b"allowed"
            c2.close()
            c3 = await connected(no_reverse)
            assert await c3.send_config(go_config([remote(free_port(), echo.port)])) == (
                False, "server: Reverse port forwaring not enabled on server")
            c3.close()
        asyncio.run(body())
    finally:
        s.stop()
        no_reverse.stop()


def test_a_port_in_use_is_the_config_reply_and_nothing_stays_bound(server, echo):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    free = free_port()
    try:
        async def body():
            c = await connected(server)
            ok, text = await c.send_config(go_config([remote(free, echo.port), remote(busy.getsockname()[1], echo.port)]))
            assert not ok
            assert text.startswith(f"server: Server cannot listen on R:127.0.0.1:{busy.getsockname()[1]}=>{echo.port}: ")
            assert "in use" in text
            assert refused(free), "the first remote stayed bound after the second failed"
            c.close()
        asyncio.run(body())
    finally:
        busy.close()


def test_a_client_that_never_sends_config_is_dropped_at_the_deadline(tmp_path):
    s = SwiftTunnelServer(str(tmp_path), extra=["--config-timeout", "1s"])
    try:
        async def body():
            c = await connected(s)
            assert await c.wait_closed(timeout=15), "still connected long after the config deadline"
        asyncio.run(body())
        s.wait_log(lambda l: l.get("msg") == "Timeout waiting for configuration", what="config timeout logged")
    finally:
        s.stop()


async def raw_websocket(server: SwiftTunnelServer, protocol: str = "chisel-v3"):
    return await ws_connect(server.url.replace("http", "ws", 1), additional_headers={"Sec-WebSocket-Protocol": protocol},
                            compression=None, ping_interval=None, max_size=None, open_timeout=10)


async def closed_code(ws, timeout: float = 15) -> int | None:
    """Reads until the server ends the connection; returns the close code it sent, if any."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


def test_oversized_messages_before_authentication_end_the_connection(server):
    async def body():
        ws = await raw_websocket(server)
        assert (await ws.recv()).startswith(b"SSH-chisel-v3-server\r\n")
        await ws.send(b"x" * 200_000)
        assert await closed_code(ws) == 1009
        # An SSH packet announced at 100,000 bytes, in a small message: over the pre-auth packet limit.
        ws2 = await raw_websocket(server)
        await ws2.recv()
        await ws2.send(b"SSH-2.0-probe\r\n" + (100_000).to_bytes(4, "big") + b"\x04" + b"\0" * 64)
        await closed_code(ws2)
        assert ws2.close_code is not None
    asyncio.run(body())
    server.wait_log(lambda l: "packet length 100000 exceeds the limit of 32768 bytes" in l.get("error", ""),
                    what="pre-auth packet limit logged")


def test_a_handshake_that_never_finishes_is_cut_at_the_deadline(tmp_path):
    s = SwiftTunnelServer(str(tmp_path), extra=["--handshake-timeout", "1s"])
    try:
        async def body():
            ws = await raw_websocket(s)
            assert (await ws.recv()).startswith(b"SSH-chisel-v3-server\r\n")
            await closed_code(ws)   # within 15 s, or it raises TimeoutError
        asyncio.run(body())
        s.wait_log(lambda l: "handshake did not finish within 1s" in l.get("error", ""), what="handshake deadline logged")
    finally:
        s.stop()


def test_a_vanishing_client_frees_its_listeners_at_once(server, echo):
    # The server pings every second here; the listeners must go when the TCP connection does,
    # before a keepalive could notice, so restart it with chisel's default 25 s.
    server.stop()
    server.extra = [a for a in server.extra if a not in ("--keepalive", "1s")]
    server.start()
    port = free_port()

    async def body():
        c = await connected(server)
        assert (await c.send_config(go_config([remote(port, echo.port)])))[0]
        assert await in_thread(echo_roundtrip, port, b"up") == b"up"
        c.close()   # TCP abort: no WebSocket close frame, no SSH disconnect
        await in_thread(lambda: wait_for(lambda: refused(port), timeout=5, what="listener freed"))
        c2 = await connected(server)
        assert await c2.send_config(go_config([remote(port, echo.port)])) == (True, "")
        assert await in_thread(echo_roundtrip, port, b"again") == b"again"
        c2.close()
    asyncio.run(body())


def test_connections_per_client_and_channels_per_connection_are_capped(tmp_path, echo):
    s = SwiftTunnelServer(str(tmp_path), extra=["--max-connections-per-client", "2", "--max-channels-per-connection", "2"])
    try:
        async def body():
            a, b = await connected(s), await connected(s)
            with pytest.raises(InvalidStatus) as info:
                await connected(s)
            assert info.value.response.status_code == 429
            port = free_port()
            assert (await a.send_config(go_config([remote(port, echo.port)])))[0]
            # Blocking socket calls go to a thread: the client's asyncio loop must keep running.
            held = [await in_thread(socket.create_connection, ("127.0.0.1", port), 10) for _ in range(2)]
            for i, h in enumerate(held):
                assert await in_thread(_exchange, h, b"ping%d" % i) == b"ping%d" % i
            third = await in_thread(socket.create_connection, ("127.0.0.1", port), 10)
            assert await in_thread(_exchange, third, b"over") == b"", "a third connection was carried over a limit of 2 channels"
            third.close()
            held[0].close()
            await in_thread(lambda: wait_for(lambda: _echoes(port), timeout=10, what="a channel freed for a new connection"))
            held[1].close()
            a.close()
            b.close()
            # Closed connections no longer count against the client.
            ended = lambda: len([l for l in s.logs() if l.get("msg") in ("SSH disconnected", "Closed connection")]) >= 2
            await in_thread(lambda: wait_for(ended, timeout=10, what="both sessions ended"))
            c = await connected(s)
            c.close()
        asyncio.run(body())
        s.wait_log(lambda l: "too many open channels (limit 2)" in l.get("msg", ""), what="channel limit logged")
    finally:
        s.stop()


def _exchange(s: socket.socket, data: bytes) -> bytes:
    """Sends `data`, returns what comes back (b"" when the server closed the connection)."""
    try:
        s.sendall(data)
        return s.recv(16)
    except ConnectionResetError:
        return b""


def _echoes(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as x:
        x.sendall(b"hello")
        return x.recv(16) == b"hello"


def test_plain_http_and_a_wrong_subprotocol_get_chiselss_answers(server):
    r = requests.get(server.url + "/health", timeout=5)
    assert (r.status_code, r.text) == (200, "OK\n")
    v = requests.get(server.url + "/version", timeout=5)
    assert v.status_code == 200 and v.text and "\n" not in v.text
    n = requests.get(server.url + "/some/path", timeout=5)
    assert (n.status_code, n.text) == (404, "Not found")

    async def body():
        with pytest.raises(InvalidStatus) as info:
            await raw_websocket(server, protocol="chisel-v2")
        assert info.value.response.status_code == 404
    asyncio.run(body())
    server.wait_log(lambda l: l.get("msg") == "ignored client connection using protocol 'chisel-v2', expected 'chisel-v3'")


def test_wss_with_tls_cert_and_key(tmp_path, echo):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    s = SwiftTunnelServer(str(tmp_path), extra=["--tls-cert", str(cert), "--tls-key", str(key)], name="tls")
    try:
        assert s.wait_log(lambda l: l.get("msg", "").startswith("Listening on https://"))
        ctx = ssl.create_default_context(cafile=str(cert))

        async def body():
            c = ChiselClient()
            await c.connect(f"https://127.0.0.1:{s.port}", TUNNEL_USER, TUNNEL_PASSWORD,
                            expect_fingerprint=SEED_FINGERPRINT, ssl_context=ctx)
            port = free_port()
            assert await c.send_config(go_config([remote(port, echo.port)])) == (True, "")
            data = pattern(1 << 20, seed=9)
            assert await in_thread(echo_roundtrip, port, data) == data
            c.close()
        asyncio.run(body())
        assert requests.get(f"https://127.0.0.1:{s.port}/health", verify=str(cert), timeout=5).text == "OK\n"
    finally:
        s.stop()
