#!/usr/bin/env python3
"""aiohttp server for our HTTP client tests. Prints "PORT <n>" once listening on 127.0.0.1.

GET  /stream?n=N   chunked body: N lines "line <i>\\n", each written and drained separately
GET  /hello        small fixed-length body, keep-alive
POST /echo         echoes the request body
GET  /slow         waits 30 s before answering (for deadline tests)
"""
import asyncio
import sys

from aiohttp import web


async def stream(request):
    n = int(request.query.get("n", "10"))
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(n):
        await resp.write(f"line {i}\n".encode())
        await asyncio.sleep(0.005)
    await resp.write_eof()
    return resp


async def hello(request):
    return web.Response(text="hello from aiohttp")


async def echo(request):
    return web.Response(body=await request.read())


async def slow(request):
    await asyncio.sleep(30)
    return web.Response(text="late")


async def main():
    app = web.Application(client_max_size=64 << 20)
    app.add_routes([web.get("/stream", stream), web.get("/hello", hello), web.post("/echo", echo), web.get("/slow", slow)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
