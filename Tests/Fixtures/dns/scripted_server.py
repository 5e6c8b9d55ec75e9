"""A DNS server on 127.0.0.1 (UDP) for the resolver tests, built on dnslib's DNSServer: dnslib
parses and packs the wire format (RFC 1035, RFC 3596 AAAA), this file only decides the answer.

Behaviour per name (case-insensitive; the longest matching rule wins, `*.x` matches names under x):
  --a NAME=IP[,IP]      A records          --aaaa NAME=IP[,IP]   AAAA records
  --ttl NAME=SECONDS    TTL of that name's records (default 60)
  --nodata NAME         NOERROR with no answer (the name exists, no address)
  --refused NAME        REFUSED            --servfail NAME       SERVFAIL
  --drop NAME           no reply at all (a server that lost the query)
  --delay NAME=SECONDS  answer after a pause (each query is handled on its own thread)
  anything else         NXDOMAIN
Every query is appended to --log as "<QTYPE> <name> <udp|tcp>" before it is answered, so a test
counts what its client really asked. UDP and TCP listen on the same port, printed as "PORT <n>";
a UDP answer over 512 bytes is truncated (TC set, as RFC 1035 has it without EDNS), so the client
must ask again over TCP.
"""
import argparse
import socket
import sys
import threading
import time

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSError
from dnslib.server import DNSLogger, DNSServer


def pairs(values):
    out = {}
    for v in values or []:
        name, _, rest = v.partition("=")
        out[name.lower().rstrip(".")] = rest
    return out


class Rules:
    def __init__(self, args):
        self.a = {k: v.split(",") for k, v in pairs(args.a).items()}
        self.aaaa = {k: v.split(",") for k, v in pairs(args.aaaa).items()}
        self.ttl = {k: int(v) for k, v in pairs(args.ttl).items()}
        self.delay = {k: float(v) for k, v in pairs(args.delay).items()}
        self.sets = {"nodata": set(args.nodata or []), "refused": set(args.refused or []),
                     "servfail": set(args.servfail or []), "drop": set(args.drop or [])}

    @staticmethod
    def lookup(table, name):
        """The value of the most specific rule for name: exact, then *.parent, *.grandparent..."""
        if name in table:
            return table[name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            wildcard = "*." + ".".join(labels[i:])
            if wildcard in table:
                return table[wildcard]
        return None

    def has(self, kind, name):
        return self.lookup({k.lower(): True for k in self.sets[kind]}, name) is not None


class ScriptedResolver:
    def __init__(self, rules, log_path):
        self.rules = rules
        self.log_path = log_path
        self.lock = threading.Lock()

    def resolve(self, request, handler):
        q = request.q
        name = str(q.qname).lower().rstrip(".")
        qtype = QTYPE[q.qtype]
        with self.lock, open(self.log_path, "a") as f:
            f.write(f"{qtype} {name} {handler.protocol}\n")
        r = self.rules
        delay = r.lookup(r.delay, name)
        if delay:
            time.sleep(delay)
        if r.has("drop", name):
            raise DNSError("dropped on purpose")   # DNSHandler logs it and sends nothing
        reply = request.reply()
        if r.has("refused", name):
            reply.header.rcode = RCODE.REFUSED
            return reply
        if r.has("servfail", name):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        ttl = r.lookup(r.ttl, name) or 60
        v4, v6 = r.lookup(r.a, name), r.lookup(r.aaaa, name)
        if v4 is None and v6 is None and not r.has("nodata", name):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qtype == "A":
            for ip in v4 or []:
                reply.add_answer(RR(q.qname, QTYPE.A, ttl=ttl, rdata=A(ip)))
        elif qtype == "AAAA":
            for ip in v6 or []:
                reply.add_answer(RR(q.qname, QTYPE.AAAA, ttl=ttl, rdata=AAAA(ip)))
        if handler.protocol == "udp" and len(reply.pack()) > 512:
            # Truncated as servers do: the question kept, TC set, no records (dnslib's own
            # truncate() drops the question too, which clients rightly ignore as a mismatch).
            reply = request.reply()
            reply.header.tc = 1
        return reply


def bind_both(resolver, port, logger):
    """UDP and TCP servers on one port. With port 0 the kernel picks the UDP port, which may be
    taken for TCP (a connection in TIME_WAIT, another test): then another pick, a few times."""
    for _ in range(1 if port else 20):
        udp = DNSServer(resolver, address="127.0.0.1", port=port, logger=logger)
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=udp.server.server_address[1], tcp=True, logger=logger)
            return udp, tcp
        except OSError as e:
            udp.server.server_close()
            error = e
    raise error


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", required=True)
    for flag in ("--a", "--aaaa", "--ttl", "--delay", "--nodata", "--refused", "--servfail", "--drop"):
        p.add_argument(flag, action="append")
    args = p.parse_args()
    resolver = ScriptedResolver(Rules(args), args.log)
    quiet = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
    udp, tcp = bind_both(resolver, args.port, quiet)
    port = udp.server.server_address[1]
    # A burst of queries (200 lookups at once) must not overflow the default receive buffer
    # while Python catches up: a dropped query would be retried and measure the retry timer.
    udp.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    udp.start_thread()
    tcp.start_thread()
    print(f"PORT {port}", flush=True)
    try:
        while udp.isAlive() and tcp.isAlive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
