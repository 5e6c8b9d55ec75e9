"""Reference broadcast server for bench/realtime_bench.py, written with Python `websockets`
(asyncio, its `broadcast()`), doing what the agent's hub does for this bench and no more: it
follows the part of the hub protocol the bench uses (`subscribe {"topics":["events"]}` answered by
`subscribed`, then `event` messages in the hub's shape), and turns each TCP connection to its
trigger port into a `forward_opened` event when it is accepted (echoing bytes meanwhile) and a
`forward_closed` event when it ends, like a tunnelled connection through a forward.
Prints `{"ws_port": N, "trigger_port": M}` on stdout when listening."""

import asyncio
import itertools
import json
import sys
import time

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

subscribers: set = set()
sequence = itertools.count(1)
active = 0


def rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def publish(name: str, data: dict) -> None:
    ts = rfc3339()
    broadcast(subscribers, json.dumps({"type": "event", "timestamp": ts,
                                       "data": {"id": next(sequence), "event": name, "timestamp": ts, "data": data}},
                                      separators=(",", ":")))


async def hub(ws) -> None:
    try:
        async for text in ws:
            try:
                message = json.loads(text)
            except ValueError:
                await ws.send(json.dumps({"type": "error", "data": {"message": "invalid JSON"}}))
                continue
            if message.get("type") == "subscribe" and "events" in message.get("data", {}).get("topics", []):
                subscribers.add(ws)
                await ws.send(json.dumps({"type": "subscribed", "timestamp": rfc3339(), "data": {"topics": ["events"]}}))
    except ConnectionClosed:   # the bench's clients leave without a closing handshake
        pass
    finally:
        subscribers.discard(ws)


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global active
    active += 1
    started = time.monotonic()
    publish("forward_opened", {"forward": "bench", "remote_port": writer.get_extra_info("sockname")[1],
                               "active_connections": active})
    moved = 0
    try:
        while data := await reader.read(65536):
            moved += len(data)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        active -= 1
        writer.close()
        publish("forward_closed", {"forward": "bench", "bytes_in": moved, "bytes_out": moved,
                                   "duration_ms": int((time.monotonic() - started) * 1000)})


async def main() -> None:
    async with serve(hub, "127.0.0.1", 0, max_size=64 * 1024) as ws_server:
        trigger = await asyncio.start_server(forward, "127.0.0.1", 0, backlog=512)
        print(json.dumps({"ws_port": ws_server.sockets[0].getsockname()[1],
                          "trigger_port": trigger.sockets[0].getsockname()[1]}), flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
