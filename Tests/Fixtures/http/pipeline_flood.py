#!/usr/bin/env python3
"""A client that pipelines `GET /health` and does not read the answers (the attack of a client
that takes memory by never reading), then optionally reads them all.

usage: pipeline_flood.py PORT MEGABYTES [--read-after]
Sends up to MEGABYTES of pipelined requests without reading, stopping early once the server
has not accepted a byte for 2 s (its reads paused). Prints `SENT <bytes> <requests>`.
With --read-after it then reads the answers and prints `ANSWERS <count of 200 OK>`, reading
until it has them all or 10 s of silence. Closes the connection and exits."""
import socket
import sys
import time

port = int(sys.argv[1])
megabytes = float(sys.argv[2])
read_after = "--read-after" in sys.argv
request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
block = request * 1000
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
s.setblocking(False)
limit = int(megabytes * 1024 * 1024)
sent = 0
stalled_since = None
pending = memoryview(block)
while sent < limit:
    try:
        n = s.send(pending)
    except BlockingIOError:
        n = 0
    if n:
        sent += n
        stalled_since = None
        pending = pending[n:]
        if not pending:
            pending = memoryview(block)
    else:
        stalled_since = stalled_since or time.monotonic()
        if time.monotonic() - stalled_since > 2:
            break
        time.sleep(0.01)
requests = sent // len(request)
print(f"SENT {sent} {requests}", flush=True)
if read_after:
    s.setblocking(True)
    s.settimeout(10)
    marker = b"HTTP/1.1 200 OK"
    answers = 0
    tail = b""
    try:
        while answers < requests:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data = tail + chunk
            answers += data.count(marker)
            tail = data[-(len(marker) - 1):]
    except OSError:
        pass
    print(f"ANSWERS {answers}", flush=True)
s.close()
