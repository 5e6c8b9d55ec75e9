#!/usr/bin/env python3
"""WebSocket echo server (python `websockets`) for our client tests.

Prints "PORT <n>" once listening on 127.0.0.1. It never selects a subprotocol, so a client
that offers one gets a 101 without Sec-WebSocket-Protocol, as from a chisel server.
A text message "close:<code>" makes the server close with that code.
"""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for msg in ws:
        if isinstance(msg, str) and msg.startswith("close:"):
            await ws.close(int(msg.split(":", 1)[1]), "requested")
            return
        await ws.send(msg)


async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
