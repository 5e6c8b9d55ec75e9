#!/usr/bin/env python3
"""Drives our WebSocket server with python `websockets` as the client.

usage: ws_client_check.py ws://127.0.0.1:PORT/path
The server under test must echo messages on /echo, offer subprotocol "chat", and limit
messages to 8 MiB. Prints one line per check and "ALL OK" at the end; exits 1 on failure.
"""
import asyncio
import os
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


async def main(url):
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 100_000, 1 << 20, 4 << 20]
    async with connect(url, subprotocols=["chat"], max_size=None, compression=None) as ws:
        check(ws.subprotocol == "chat", f"subprotocol selected: {ws.subprotocol!r}")
        for n in sizes:
            data = os.urandom(n)
            await ws.send(data)
            got = await ws.recv()
            check(got == data, f"binary echo {n} bytes")
            text = ("héllo→" * (n // 8 + 1))[: max(n // 2, 0)]
            await ws.send(text)
            got = await ws.recv()
            check(got == text, f"text echo {len(text.encode())} bytes")
        # A fragmented message with a ping between the fragments.
        await ws.send(["frag", "ment", "ed ✓"])
        check(await ws.recv() == "fragmented ✓", "fragmented text message")
        pong = await ws.ping(b"abc")
        await asyncio.wait_for(pong, 5)
        check(True, "ping answered with pong")
        await ws.close(4001, "bye")
        check(ws.close_code == 4001, f"close code echoed: {ws.close_code}")

    # Invalid UTF-8 in a text frame: the server must close with 1007.
    async with connect(url, max_size=None, compression=None) as ws:
        ws.protocol.send_text(b"\xff\xfe bad")   # bypasses the library's own UTF-8 check
        ws.send_data()
        try:
            await asyncio.wait_for(ws.recv(), 5)
            check(False, "invalid UTF-8 rejected")
        except ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1007, f"invalid UTF-8 -> close {e.rcvd.code if e.rcvd else None}")

    # Over the 8 MiB limit: close 1009.
    async with connect(url, max_size=None, compression=None) as ws:
        try:
            await ws.send(b"x" * (9 << 20))
            await asyncio.wait_for(ws.recv(), 10)
            check(False, "oversized message rejected")
        except ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1009, f"oversized message -> close {e.rcvd.code if e.rcvd else None}")
    print("ALL OK", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
