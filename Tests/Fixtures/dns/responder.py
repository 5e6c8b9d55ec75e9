"""A tiny authoritative DNS responder over UDP for tests (RFC 1035 wire format).

Answers A queries for the names given on the command line (name=ipv4), NXDOMAIN for other
names, and an empty NOERROR answer for other record types of known names (AAAA, say), which
is what a real server does for a name that has only an A record. Every question is appended
to --log as "<qtype> <name>" so a test can see that its client really asked.
"""
import argparse
import socket
import struct


def parse_question(packet: bytes) -> tuple[str, int, bytes]:
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype = struct.unpack(">H", packet[i + 1:i + 3])[0]
    return ".".join(labels).lower(), qtype, packet[12:i + 5]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--log", required=True)
    p.add_argument("records", nargs="*", help="name=ipv4")
    args = p.parse_args()
    records = {k.lower(): v for k, v in (r.split("=", 1) for r in args.records)}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", args.port))
    while True:
        packet, peer = s.recvfrom(512)
        if len(packet) < 17:
            continue
        tid = struct.unpack(">H", packet[:2])[0]
        name, qtype, question = parse_question(packet)
        with open(args.log, "a") as f:
            f.write(f"{qtype} {name}\n")
        answer, count, rcode = b"", 0, 0
        if name not in records:
            rcode = 3   # NXDOMAIN
        elif qtype == 1:
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(records[name])
            count = 1
        header = struct.pack(">HHHHHH", tid, 0x8180 | rcode, 1, count, 0, 0)
        s.sendto(header + question + answer, peer)


if __name__ == "__main__":
    main()
