"""Tunnel benchmark: the agent's chisel tunnel (through the control-plane test double's
chisel-v3 server) against a direct loopback connection, measured in the same run.
Run by bench/tunnel.sh; prints a table and appends it to bench/results/tunnel.md."""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "e2e"))
from harness import Agent, ControlPlane, EchoServer, free_port  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))


def iperf(port, streams=1, reverse=False):
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(SECONDS), "-P", str(streams), "-J"]
    if reverse:
        args.append("-R")
    for _ in range(20):
        out = json.loads(subprocess.run(args, capture_output=True, text=True).stdout)
        # The previous test's connections close through the tunnel a moment later; iperf3's
        # server runs one test at a time and says so.
        if "busy" in out.get("error", ""):
            time.sleep(0.5)
            continue
        break
    if "error" in out:
        raise SystemExit(f"iperf3 to port {port} ({streams} streams{', reverse' if reverse else ''}): {out['error']}")
    return out["end"]["sum_received"]["bits_per_second"] / 8


def pingpong(port, n=2000):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        lat.append(time.perf_counter() - t)
    s.close()
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6


def connects_per_second(port, n=300):
    t = time.perf_counter()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"y")
        assert s.recv(1) == b"y"
        s.close()
    return n / (time.perf_counter() - t)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


def main():
    tmp = tempfile.mkdtemp()
    cp = ControlPlane(tmp, ["--keepalive", "25"])
    echo = EchoServer()
    ip = free_port()
    iperf_srv = subprocess.Popen(["iperf3", "-s", "-p", str(ip)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = Agent(tmp, cp.api_url, {"iperf": f"127.0.0.1:{ip}", "echo": f"127.0.0.1:{echo.port}"})
    try:
        r_iperf, r_echo = free_port(), free_port()
        cp.require_tunnel({"iperf": r_iperf, "echo": r_echo})
        cp.wait_ports({r_iperf, r_echo})
        time.sleep(0.5)
        rows = []
        mem_rows = []
        cpu_rows = []
        # Memory first, before any bulk transfer has grown the buffers.
        idle = rss_kib(agent.proc.pid)
        held = []
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", r_echo))
            s.sendall(b"z")
            held.append(s)
        for s in held:
            assert s.recv(1) == b"z"
        busy = rss_kib(agent.proc.pid)
        for s in held:
            s.close()
        mem_rows.append(("agent RSS idle (tunnel up)", f"{idle/1024:.1f} MiB", "", ""))
        mem_rows.append(("agent RSS with 1,000 open tunnelled connections", f"{busy/1024:.1f} MiB", "", f"{(busy-idle)/1000:.1f} KiB per connection"))
        for streams in (1, 16):
            for rev, label in ((False, "into the tunnel"), (True, "out of the tunnel")):
                a0, s0, w0 = cpu_seconds(agent.proc.pid), cpu_seconds(cp.proc.pid), time.monotonic()
                t = iperf(r_iperf, streams, rev)
                wall = time.monotonic() - w0
                cpu_rows.append((f"CPU, {streams} stream{'s' if streams > 1 else ''} {label}",
                                 f"agent {100 * (cpu_seconds(agent.proc.pid) - a0) / wall:.0f}%",
                                 f"test server {100 * (cpu_seconds(cp.proc.pid) - s0) / wall:.0f}%", "of one core"))
                d = iperf(ip, streams, rev)
                rows.append((f"throughput, {streams} stream{'s' if streams > 1 else ''}, {label}", f"{t/1e6:.0f} MB/s", f"{d/1e6:.0f} MB/s", f"{t/d:.3f} x"))
        tp50, tp99 = pingpong(r_echo)
        dp50, dp99 = pingpong(echo.port)
        rows.append(("1-byte ping-pong p50", f"{tp50:.0f} µs", f"{dp50:.0f} µs", f"{tp50/dp50:.1f} x"))
        rows.append(("1-byte ping-pong p99", f"{tp99:.0f} µs", f"{dp99:.0f} µs", f"{tp99/dp99:.1f} x"))
        tc = connects_per_second(r_echo)
        dc = connects_per_second(echo.port)
        rows.append(("connections opened per second (with a 1-byte echo)", f"{tc:.0f}", f"{dc:.0f}", f"{tc/dc:.2f} x"))
        machine = subprocess.run(["bash", "-c", "source bench/common.sh >/dev/null 2>&1; machine_line"], capture_output=True, text=True).stdout.strip()
        out = [f"\n## Tunnel (agent -> Python chisel-v3 test server, the bottleneck: see the CPU rows): {machine}\n",
               "| measure | through the tunnel | direct loopback | ratio |", "|---|---|---|---|"]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows + cpu_rows + mem_rows]
        text = "\n".join(out) + "\n"
        print(text)
        with open("bench/results/tunnel.md", "a") as f:
            f.write(text)
    finally:
        agent.stop()
        iperf_srv.terminate()
        echo.stop()
        cp.stop()


if __name__ == "__main__":
    main()
