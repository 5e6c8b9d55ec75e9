"""Realtime benchmark: the agent's /ws hub pushing `events` to 100 subscribed clients while the
harness makes events at a paced rate (each tunnelled connection through a forward is one
`forward_opened` and one `forward_closed`), against a reference broadcast server written with
Python `websockets` (bench/realtime_reference.py), fed the same way, in the same run.

* delivered: event messages that reached the clients, per second of the phase;
* latency: from the moment the harness starts opening connection k to the moment the k-th
  `forward_opened` reaches each client (system-wide monotonic clock; connections are opened one
  after another, so the order matches). For the agent this includes the trip through the tunnel
  (the chisel server and the SSH channel open); so a second figure, from the event's own
  `timestamp` (set when it is published, millisecond resolution) to its arrival, is the hub alone;
* RSS: the agent's, tunnel up, with 100 subscribed clients minus before they connected.

BENCH_TUNNEL=swift (default: `pipeops-agent tunnel-server`) or python (the control-plane double's
own chisel server, slower) carries the tunnel.

Run by bench/realtime.sh; prints the table and appends it to bench/results/realtime.md."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "e2e"))
sys.path.insert(0, HERE)
from harness import (TOKEN, Agent, ControlPlane, EchoServer, SwiftTunnelServer, free_port, terminate,  # noqa: E402
                     up_tunnel)
from realtime_clients import run as run_subscribers  # noqa: E402
from tunnel_bench import cpu_seconds, rss_kib  # noqa: E402

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")   # a second at one rate, 20 clients, nothing appended
CLIENTS = 20 if SMOKE else int(os.environ.get("BENCH_CLIENTS", "100"))
PROCESSES = 4
SECONDS = 1.0 if SMOKE else float(os.environ.get("BENCH_SECONDS", "4"))
RATES = [25] if SMOKE else [int(r) for r in os.environ.get("BENCH_RATES", "25,50,100,200").split(",")]   # connections/s
GRACE = 1.5   # seconds after a phase for its last events to arrive
TUNNEL = os.environ.get("BENCH_TUNNEL", "swift")


class Subscribers:
    """CLIENTS subscribers spread over PROCESSES worker processes."""

    def __init__(self, port: int, path: str, token: str | None):
        ctx = multiprocessing.get_context("spawn")
        self.workers = []
        per, extra = divmod(CLIENTS, PROCESSES)
        for i in range(PROCESSES):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=run_subscribers, args=(port, path, token, per + (i < extra), child), daemon=True)
            p.start()
            self.workers.append((p, parent))
        for p, conn in self.workers:
            if not conn.poll(40):
                raise SystemExit("subscribers did not connect within 40 s")
            kind, detail = conn.recv()
            if kind != "ready":
                raise SystemExit(f"subscribers: {detail}")

    def stop(self) -> list[tuple[list[float], list[float], int, int | None]]:
        out = []
        for p, conn in self.workers:
            conn.send("stop")
            kind, detail = conn.recv()
            out.extend(detail)
            p.join(10)
        return out


def open_close(port: int) -> float:
    """One connection through the forward: open, 1-byte echo, close. Returns how long it took."""
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"x")
    if s.recv(1) != b"x":
        raise SystemExit(f"no echo through port {port}")
    s.close()
    return time.monotonic() - t


def phases(port: int) -> list[dict]:
    """Each rate for SECONDS: connection k starts at start + k/rate (or at once when behind)."""
    out = []
    for rate in RATES:
        starts, echoes = [], []
        begin = time.monotonic()
        total = int(rate * SECONDS)
        for k in range(total):
            due = begin + k / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            starts.append(time.monotonic())
            echoes.append(open_close(port))
        end = time.monotonic()
        time.sleep(GRACE)
        out.append({"rate": rate, "starts": starts, "echoes": echoes, "begin": begin, "end": end})
    return out


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def analyse(runs: list[dict], results: list) -> list[dict]:
    """Per phase: messages delivered per second, latency p50/p99, messages missing."""
    rows = []
    k0 = 0   # connections opened in the phases before this one
    for r in runs:
        first, last = r["begin"], r["end"] + GRACE
        delivered, last_arrival, latencies, stamped = 0, first, [], []
        for opened, closed, since_stamp, _ in results:
            stamped += [d for t, d in zip(opened, since_stamp) if first <= t <= last]
            mine_o = [t for t in opened if first <= t <= last]
            mine_c = [t for t in closed if first <= t <= last]
            delivered += len(mine_o) + len(mine_c)
            last_arrival = max([last_arrival] + mine_o + mine_c)
            # The k-th forward_opened this client saw answers the k-th connection the harness opened.
            for k, t in enumerate(opened[k0:k0 + len(r["starts"])]):
                latencies.append(t - r["starts"][k])
        expected = 2 * len(r["starts"]) * len(results)
        span = max(last_arrival, r["end"]) - r["begin"]
        rows.append({"rate": r["rate"], "achieved": len(r["starts"]) / (r["end"] - r["begin"]),
                     "delivered_per_s": delivered / span, "missing": expected - delivered, "expected": expected,
                     "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
                     "stamp_p50_ms": percentile(stamped, 0.5) * 1000, "stamp_p99_ms": percentile(stamped, 0.99) * 1000,
                     "echo_p50_ms": percentile(r["echoes"], 0.5) * 1000})
        k0 += len(r["starts"])
    return rows


def measure(pid: int, ws_port: int, path: str, token: str | None, trigger_port: int) -> dict:
    idle = rss_kib(pid)
    subs = Subscribers(ws_port, path, token)
    time.sleep(2)
    connected = rss_kib(pid)
    c0, w0 = cpu_seconds(pid), time.monotonic()
    runs = phases(trigger_port)
    cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - w0)
    results = subs.stop()
    closed_by_server = [code for *_, code in results if code is not None]
    return {"idle_kib": idle, "connected_kib": connected, "after_kib": rss_kib(pid), "cpu": cpu,
            "rows": analyse(runs, results), "closed": closed_by_server}


def agent_side(tmp: str) -> dict:
    server = SwiftTunnelServer(tmp) if TUNNEL == "swift" else None
    cp = ControlPlane(tmp, ["--keepalive", "25"], tunnel=server)
    echo = EchoServer()
    # Every client comes from 127.0.0.1 within a second: no per-address rate limit here, and room
    # for all of them under realtime.max_connections.
    agent = Agent(tmp, cp.api_url, {"bench": f"127.0.0.1:{echo.port}"},
                  extra_yaml=f"server:\n  rate_limit: 0\nrealtime:\n  max_connections: {CLIENTS + 20}\n",
                  log_level="info")
    try:
        remote = free_port()
        up_tunnel(cp, agent, {"bench": remote})
        time.sleep(1)
        return measure(agent.proc.pid, agent.port, "/ws", TOKEN, remote)
    finally:
        agent.stop()
        echo.stop()
        cp.stop()
        if server:
            server.stop()


def reference_side() -> dict:
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "realtime_reference.py")], stdout=subprocess.PIPE, text=True)
    try:
        ports = json.loads(proc.stdout.readline())
        time.sleep(0.5)
        return measure(proc.pid, ports["ws_port"], "/", None, ports["trigger_port"])
    finally:
        terminate(proc)


def main() -> None:
    machine = sys.argv[1] if len(sys.argv) > 1 else ""
    tmp = tempfile.mkdtemp()
    agent = agent_side(tmp)
    ref = reference_side()
    out = [f"\n## Realtime: {CLIENTS} WebSocket clients subscribed to events, agent /ws vs a Python websockets "
           f"broadcast server (tunnel server: {TUNNEL}): {machine}\n",
           "| load (connections/s through the forward, 2 events each) | agent: delivered msgs/s | reference: delivered msgs/s "
           "| agent p50 / p99 | reference p50 / p99 | agent: missing | reference: missing |",
           "|---|---|---|---|---|---|---|"]
    for a, r in zip(agent["rows"], ref["rows"]):
        out.append(f"| {a['rate']}/s (achieved {a['achieved']:.0f} / {r['achieved']:.0f}) | {a['delivered_per_s']:,.0f} "
                   f"| {r['delivered_per_s']:,.0f} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} ms "
                   f"| {r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms | {a['missing']} of {a['expected']:,} "
                   f"| {r['missing']} of {r['expected']:,} |")
    out += ["", "| measure | agent | reference |", "|---|---|---|"]
    out.append("| event stamped -> at the client, p50 / p99 per phase (the hub alone; ms resolution) | "
               + ", ".join(f"{a['stamp_p50_ms']:.1f} / {a['stamp_p99_ms']:.1f}" for a in agent["rows"]) + " ms | "
               + ", ".join(f"{r['stamp_p50_ms']:.1f} / {r['stamp_p99_ms']:.1f}" for r in ref["rows"]) + " ms |")
    out.append(f"| RSS idle (agent: tunnel up) | {agent['idle_kib'] / 1024:.1f} MiB | {ref['idle_kib'] / 1024:.1f} MiB |")
    out.append(f"| RSS with {CLIENTS} subscribed clients, minus idle | {(agent['connected_kib'] - agent['idle_kib'])} KiB "
               f"| {(ref['connected_kib'] - ref['idle_kib'])} KiB |")
    out.append(f"| RSS after the run, minus idle | {(agent['after_kib'] - agent['idle_kib'])} KiB "
               f"| {(ref['after_kib'] - ref['idle_kib'])} KiB |")
    out.append(f"| CPU during the phases | {agent['cpu'] * 100:.0f}% | {ref['cpu'] * 100:.0f}% |")
    out.append("| connection open -> echo, p50 per phase (the agent's includes the tunnel) | "
               + ", ".join(f"{a['echo_p50_ms']:.2f}" for a in agent["rows"]) + " ms | "
               + ", ".join(f"{r['echo_p50_ms']:.2f}" for r in ref["rows"]) + " ms |")
    out.append(f"| clients closed by the server | {len(agent['closed'])} {sorted(set(agent['closed']))} "
               f"| {len(ref['closed'])} {sorted(set(ref['closed']))} |")
    text = "\n".join(out) + "\n"
    print(text)
    if not SMOKE:
        with open(os.path.join(HERE, "results", "realtime.md"), "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
