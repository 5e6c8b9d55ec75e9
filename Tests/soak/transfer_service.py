"""The local service behind the agent's forward in the soak (the far end of every tunnelled
transfer). Speaks framing.py: checks the client's payload against its digest, answers with the
verdict and the number of fresh random bytes the client asked for. One asyncio process, so the
soak can stop it (the "local service goes away" fault) and start it again on the same port.

    python3 Tests/soak/transfer_service.py --port P      # prints {"port": P, "pid": ...} when ready
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
from framing import REQUEST_HEAD, answer_head, random_payload, read_digested  # noqa: E402

# Reply bytes are written in pieces so a slow reader pushes back (drain) instead of the whole
# reply sitting in this process's memory at once.
WRITE_PIECE = 256 * 1024


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rng: random.Random) -> None:
    try:
        length, wanted_back, digest = REQUEST_HEAD.unpack(await reader.readexactly(REQUEST_HEAD.size))
        matched = await read_digested(reader, length, digest)
        if not matched:
            print(f"transfer service: a {length}-byte payload did not match its digest", file=sys.stderr, flush=True)
        reply = random_payload(rng, min(wanted_back, 64 << 20))
        writer.write(answer_head(matched, reply))
        for i in range(0, len(reply), WRITE_PIECE):
            writer.write(reply[i:i + WRITE_PIECE])
            await writer.drain()
        await writer.drain()
        # The client closes first once it has everything; waiting for its EOF keeps this side
        # from cutting the tunnel channel while the last bytes are still on their way.
        await asyncio.wait_for(reader.read(1), timeout=300)
    except Exception:   # a client gone mid-transfer (a fault, or the soak stopping): nothing to answer
        pass
    finally:
        writer.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    rng = random.Random(os.getpid())
    server = await asyncio.start_server(lambda r, w: serve_one(r, w, rng), "127.0.0.1", args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    # Leave at once, connections and all, as a crash would: the soak's fault is the service going
    # away, and asyncio's orderly shutdown would only print a traceback per open connection.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
