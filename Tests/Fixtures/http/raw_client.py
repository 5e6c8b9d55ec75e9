#!/usr/bin/env python3
"""Sends raw bytes to 127.0.0.1:PORT and prints what comes back, until the server closes
(or 5 s of silence). usage: raw_client.py PORT HEX_BYTES [--slow]
--slow sends one byte every 0.2 s (a slowloris client)."""
import socket
import sys
import time

port = int(sys.argv[1])
data = bytes.fromhex(sys.argv[2])
slow = "--slow" in sys.argv
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(15 if slow else 5)
try:
    if slow:
        for b in data:
            s.sendall(bytes([b]))
            time.sleep(0.2)
    else:
        s.sendall(data)
except OSError:
    pass
out = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
sys.stdout.buffer.write(out)
