"""The soak's transfer protocol between a tunnelled client and the local service behind the
agent's forward. Length-prefixed both ways, because a chisel tunnel has no half-close (the first
EOF on either side closes both ends), so neither side can use EOF to mean "done".

    client -> service: REQUEST  = length (u64) | wanted back (u64) | sha256(payload) | payload
    service -> client: ANSWER   = verdict (u8: 1 = the payload's digest matched) | length (u64)
                                  | sha256(reply) | reply (fresh random bytes)

Each side checks the other's bytes against the digest that came with them, so a transfer is
intact only when both directions are."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct

REQUEST_HEAD = struct.Struct("!QQ32s")
ANSWER_HEAD = struct.Struct("!BQ32s")
# Bounds a peer's announced length, so a garbled head cannot make the reader allocate gigabytes.
MAX_PAYLOAD = 64 << 20


def random_payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def request_head(payload: bytes, wanted_back: int) -> bytes:
    return REQUEST_HEAD.pack(len(payload), wanted_back, hashlib.sha256(payload).digest())


def answer_head(matched: bool, reply: bytes) -> bytes:
    return ANSWER_HEAD.pack(1 if matched else 0, len(reply), hashlib.sha256(reply).digest())


class CorruptTransfer(Exception):
    """Bytes arrived complete but are not the bytes that were sent: the soak's real failure."""


async def read_digested(reader: asyncio.StreamReader, length: int, digest: bytes,
                        chunk: int = 256 * 1024, pause: float = 0.0) -> bool:
    """Reads `length` bytes (in `chunk`s, sleeping `pause` after each: a slow consumer) and says
    whether they hash to `digest`. A short read raises asyncio.IncompleteReadError."""
    if length > MAX_PAYLOAD:
        raise CorruptTransfer(f"announced length {length} is over {MAX_PAYLOAD}")
    h = hashlib.sha256()
    left = length
    while left:
        part = await reader.readexactly(min(chunk, left))
        h.update(part)
        left -= len(part)
        if pause:
            await asyncio.sleep(pause)
    return h.digest() == digest
