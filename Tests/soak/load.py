"""The soak's load, one asyncio process (so it has a core apart from the driver):

* churn: N workers, each in a loop opening a connection to the tunnel's remote port, sending a
  random payload and reading a random reply (framing.py: both checked by digest), closing;
* slow consumers: clients that ask for 3 MiB and read them at about 256 KiB/s through a small
  receive buffer, so the agent has to hold back the local service instead of buffering;
* slowloris: clients on the agent's own HTTP port that send a request head a byte a second and
  never finish it; each one reconnects when the agent cuts it.

A transfer attempt ends `ok`, `corrupt` (it completed with wrong bytes, or the far end said the
bytes it got were wrong) or `interrupted` (a connection error, EOF or the deadline: a fault
injected by the driver); an interrupted transfer is retried with the same payload.

Writes JSON lines on stdout: a cumulative `counters` line every second, one `attempt_failed`
line per interrupted attempt and one `corrupt` line per corrupt transfer. SIGTERM stops new
transfers, lets those under way finish (within DRAIN_DEADLINE) and writes a final `counters`
line with `unfinished_at_stop`.

    python3 Tests/soak/load.py --port REMOTE --status-port AGENT [--churn 100] [--slow 4] [--slowloris 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(__file__))
from framing import ANSWER_HEAD, CorruptTransfer, random_payload, read_digested, request_head  # noqa: E402

# Every wait has a deadline. A transfer that has not finished by then counts as interrupted;
# generous, because a loaded 2-core machine can be slow and nothing here measures speed.
TRANSFER_DEADLINE = 120.0
SLOW_DEADLINE = 300.0
DRAIN_DEADLINE = SLOW_DEADLINE + 10
RETRY_PAUSE = 0.2
INTERRUPTIONS = (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError)
# Set by SIGTERM. Workers look at it between attempts as well as being cancelled, because
# Python 3.11's wait_for can swallow a cancellation that races with its inner task finishing.
STOPPING = asyncio.Event()


@dataclass
class Counters:
    counts: Counter = field(default_factory=Counter)
    bytes_checked: int = 0
    loris_answers: Counter = field(default_factory=Counter)
    loris_held_max: float = 0.0

    def line(self) -> dict:
        return {"ev": "counters", "t": time.monotonic(), **self.counts, "bytes_checked": self.bytes_checked,
                "loris_answers": dict(self.loris_answers), "loris_held_max": round(self.loris_held_max, 1)}


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def connect(port: int, rcvbuf: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if not rcvbuf:
        return await asyncio.open_connection("127.0.0.1", port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)   # set before connect: it sizes the window
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=rcvbuf)   # and pause reading early


async def transfer(port: int, payload: bytes, wanted_back: int, rcvbuf: int = 0, chunk: int = 256 * 1024,
                   pause: float = 0.0) -> int:
    """One attempt: returns the bytes checked (both ways); raises CorruptTransfer or an interruption."""
    reader, writer = await connect(port, rcvbuf)
    try:
        writer.write(request_head(payload, wanted_back) + payload)
        await writer.drain()
        matched, length, digest = ANSWER_HEAD.unpack(await reader.readexactly(ANSWER_HEAD.size))
        if length != wanted_back:
            raise CorruptTransfer(f"asked for {wanted_back} bytes back, the answer announced {length}")
        if not await read_digested(reader, length, digest, chunk=chunk, pause=pause):
            raise CorruptTransfer(f"the {length}-byte reply does not match its digest")
        if matched != 1:
            raise CorruptTransfer(f"the service says the {len(payload)}-byte payload did not match its digest")
        return len(payload) + length
    finally:
        writer.close()


async def transfer_until_done(kind: str, port: int, payload: bytes, wanted_back: int, counters: Counters,
                              deadline: float, **kw) -> None:
    """Retries an interrupted transfer with the same payload until it completes (ok or corrupt)."""
    attempt = 0
    while not STOPPING.is_set():
        started = time.monotonic()
        try:
            checked = await asyncio.wait_for(transfer(port, payload, wanted_back, **kw), deadline)
            counters.bytes_checked += checked   # not `+= await ...`: that reads the total before awaiting
            counters.counts[f"{kind}_ok"] += 1
            if attempt:
                counters.counts[f"{kind}_ok_after_retry"] += 1
            return
        except CorruptTransfer as exc:
            counters.counts[f"{kind}_corrupt"] += 1
            emit({"ev": "corrupt", "kind": kind, "start": started, "end": time.monotonic(), "error": str(exc)})
            return
        except INTERRUPTIONS as exc:
            attempt += 1
            counters.counts[f"{kind}_attempts_failed"] += 1
            emit({"ev": "attempt_failed", "kind": kind, "start": started, "end": time.monotonic(),
                  "error": type(exc).__name__ + (f": {exc}" if str(exc) else "")})
            await asyncio.sleep(RETRY_PAUSE)


async def churn_worker(port: int, rng: random.Random, counters: Counters) -> None:
    while not STOPPING.is_set():
        payload = random_payload(rng, rng.randint(1, 256 * 1024))
        await transfer_until_done("churn", port, payload, rng.randint(1, 256 * 1024), counters, TRANSFER_DEADLINE)


async def slow_consumer(port: int, rng: random.Random, counters: Counters) -> None:
    while not STOPPING.is_set():
        payload = random_payload(rng, rng.randint(1, 4096))
        # 3 MiB at 64 KiB per 1/4 s (256 KiB/s): about 12 s per transfer, half again the tunnel's
        # channel window (2 MiB), so the agent must stop reading the local service for a while.
        await transfer_until_done("slow", port, payload, 3 << 20, counters, SLOW_DEADLINE,
                                  rcvbuf=16 * 1024, chunk=64 * 1024, pause=0.25)


async def slowloris(port: int, counters: Counters) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: soak\r\nX-Slow: "
    while not STOPPING.is_set():
        started = time.monotonic()
        answer = "closed without an answer"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        except INTERRUPTIONS:
            counters.loris_answers["connect failed"] += 1
            await asyncio.sleep(1)
            continue
        try:
            writer.write(head)
            # A byte a second, for at most 10 minutes; the agent is expected to cut it long before.
            for _ in range(600):
                await writer.drain()
                try:
                    first = await asyncio.wait_for(reader.read(64), 1.0)
                except asyncio.TimeoutError:
                    writer.write(b"a")
                    continue
                if first:
                    answer = first.split(b"\r\n", 1)[0].decode(errors="replace")[:40]
                break
            else:
                answer = "never cut (10 min)"
        except INTERRUPTIONS:
            pass
        finally:
            writer.close()
        counters.loris_answers[answer] += 1
        counters.loris_held_max = max(counters.loris_held_max, time.monotonic() - started)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True, help="the tunnel's remote port for the soak forward")
    p.add_argument("--status-port", type=int, required=True, help="the agent's own HTTP port (slowloris)")
    p.add_argument("--churn", type=int, default=100)
    p.add_argument("--slow", type=int, default=4)
    p.add_argument("--slowloris", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    counters = Counters()
    transfers = [asyncio.create_task(churn_worker(args.port, random.Random(args.seed * 1000 + i), counters))
                 for i in range(args.churn)]
    transfers += [asyncio.create_task(slow_consumer(args.port, random.Random(args.seed * 1000 + 500 + i), counters))
                  for i in range(args.slow)]
    loris = [asyncio.create_task(slowloris(args.status_port, counters)) for _ in range(args.slowloris)]
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, STOPPING.set)
    while not STOPPING.is_set():
        emit(counters.line())
        try:
            await asyncio.wait_for(STOPPING.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    for t in loris:
        t.cancel()
    # Transfers under way finish (no new ones start): one that cannot within the deadline is a
    # hang, which the driver fails on.
    _, unfinished = await asyncio.wait(transfers, timeout=DRAIN_DEADLINE)
    counters.counts["unfinished_at_stop"] = len(unfinished)
    for t in unfinished:
        t.cancel()
    emit(counters.line())


if __name__ == "__main__":
    asyncio.run(main())
