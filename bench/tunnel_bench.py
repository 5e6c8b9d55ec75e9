"""Tunnel benchmark: the agent's chisel tunnel through a chisel-v3 server, a reference chisel
client through the same server if one is given, and direct loopback, measured in the same run.
Run by bench/tunnel.sh, which documents the knobs; prints a table and (unless smoke) appends it
to bench/results/tunnel.md.

  BENCH_TUNNEL=python   the control-plane double's own chisel server (default)
  BENCH_TUNNEL=swift    `pipeops-agent tunnel-server`
  BENCH_TUNNEL=URL      a chisel server the user runs: BENCH_TUNNEL_FINGERPRINT, BENCH_TUNNEL_AUTH
                        (user:pass, default pipeops:s3cret-pass) and optionally BENCH_TUNNEL_PID
                        (for its CPU figures)
  BENCH_REFERENCE_CLIENT=/path/to/chisel   a chisel-compatible client measured the same way
  BENCH_SMOKE=1         one second per measure, 50 held connections, nothing appended
  BENCH_BACKENDS="epoll io_uring"   the agent's loop backends to measure, one column each
  BENCH_RELAY_FLOOR=/path/to/relay-floor   bench/relay-floor.c built (bench/tunnel.sh does it):
                        the floor column, two of them in series where the agent and the server
                        sit: the least CPU per byte and the most throughput an encrypting tunnel
                        can have here

Ratio columns, against baselines from the same run: each agent / direct loopback (throughput,
round trips, connections) and each agent / the floor (throughput and CPU seconds per GB).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "e2e"))
from harness import (TUNNEL_PASSWORD, TUNNEL_USER, Agent, ControlPlane, EchoServer, SwiftTunnelServer,  # noqa: E402
                     free_port, terminate, wait_for)

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
SECONDS = 1.0 if SMOKE else float(os.environ.get("BENCH_SECONDS", "4"))
HELD = 50 if SMOKE else 1000
PINGS = 200 if SMOKE else 2000
CONNECTS = 30 if SMOKE else 300
BACKENDS = os.environ.get("BENCH_BACKENDS", "epoll io_uring").split()


def iperf(port, streams=1, reverse=False):
    """Bytes per second received, and bytes moved."""
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
    return out["end"]["sum_received"]["bits_per_second"] / 8, out["end"]["sum_received"]["bytes"]


def throughput_cases():
    """The four throughput measures: (streams, reverse, throughput row, CPU row)."""
    for streams in (1, 16):
        for rev, label in ((False, "into the tunnel"), (True, "out of the tunnel")):
            which = f"{streams} stream{'s' if streams > 1 else ''}, {label}"
            yield streams, rev, f"throughput, {which}", f"CPU s/GB, {which}"


def syscalls_per_mb(pid, port, reverse):
    """System calls the client makes per MB moved (strace -c while 1 stream runs). io_uring's
    I/O does not show as read/write calls, only as io_uring_enter."""
    out = tempfile.mktemp(suffix=".strace")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    _, moved = iperf(port, 1, reverse)
    tracer.send_signal(2)
    tracer.wait()
    total = 0
    for line in open(out):
        parts = line.split()
        if len(parts) >= 5 and parts[-1] == "total":
            total = int(parts[3])
    os.unlink(out)
    return total / (moved / 1e6) if moved else 0.0


def pingpong(port, n=PINGS):
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


def connects_per_second(port, n=CONNECTS):
    t = time.perf_counter()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"y")
        assert s.recv(1) == b"y"
        s.close()
    return n / (time.perf_counter() - t)


def cpu_seconds(pid):
    if not pid:
        return 0.0
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def measure(client_pid, server_pid, r_iperf, r_echo):
    """Every figure for one client through the tunnel: {measure: value text}, plus raw rates."""
    out, raw = {}, {}
    idle = rss_kib(client_pid)
    held = []
    # In batches under the agent's tunnel.max_pending_dials (64): a burst of 1,000 channel opens
    # would be refused past that limit, by design, and this measures memory, not the limit.
    for first in range(0, HELD, 32):
        batch = [socket.create_connection(("127.0.0.1", r_echo)) for _ in range(min(32, HELD - first))]
        for s in batch:
            s.sendall(b"z")
        for s in batch:
            assert s.recv(1) == b"z"
        held += batch
    busy = rss_kib(client_pid)
    for s in held:
        s.close()
    out["client RSS, tunnel up and idle"] = f"{idle / 1024:.1f} MiB"
    out[f"client RSS with {HELD:,} held connections"] = f"{busy / 1024:.1f} MiB ({(busy - idle) / HELD:.1f} KiB each)"
    for streams, rev, name, cpu_key in throughput_cases():
        c0, s0 = cpu_seconds(client_pid), cpu_seconds(server_pid)
        rate, moved = iperf(r_iperf, streams, rev)
        gb = moved / 1e9
        out[name] = f"{rate / 1e6:.0f} MB/s"
        raw[name] = rate
        server_cpu = f", server {(cpu_seconds(server_pid) - s0) / gb:.2f}" if server_pid else ""
        raw[cpu_key] = (cpu_seconds(client_pid) - c0) / gb
        out[cpu_key] = f"client {raw[cpu_key]:.2f}{server_cpu}"
    for rev, label in ((False, "into the tunnel"), (True, "out of the tunnel")):
        out[f"system calls per MB, 1 stream, {label}"] = f"{syscalls_per_mb(client_pid, r_iperf, rev):.1f}"
    p50, p99 = pingpong(r_echo)
    out["1-byte round trip p50"], out["1-byte round trip p99"] = f"{p50:.0f} µs", f"{p99:.0f} µs"
    raw["1-byte round trip p50"], raw["1-byte round trip p99"] = p50, p99
    cps = connects_per_second(r_echo)
    out["connections per second (1-byte echo)"] = f"{cps:.0f}"
    raw["connections per second (1-byte echo)"] = cps
    return out, raw


def direct(iperf_port, echo_port):
    raw = {}
    for streams, rev, name, _ in throughput_cases():
        raw[name] = iperf(iperf_port, streams, rev)[0]
    raw["1-byte round trip p50"], raw["1-byte round trip p99"] = pingpong(echo_port)
    raw["connections per second (1-byte echo)"] = connects_per_second(echo_port)
    text = {k: (f"{v / 1e6:.0f} MB/s" if k.startswith("throughput") else f"{v:.0f} µs" if "µs" in k or "round trip" in k else f"{v:.0f}")
            for k, v in raw.items()}
    return text, raw


def listening_quietly(port):
    """Something listens on 127.0.0.1:port (asked of the kernel: a probe connection through the
    relay would reach iperf3, which takes it for a test)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def relay_floor(iperf_port):
    """Two bench/relay-floor.c processes in series between iperf3's ends, as the agent and the
    tunnel server sit: the least CPU per byte (two loopback socket copies and AES-128-GCM,
    nothing else) and the most throughput an encrypting tunnel can have on this machine.
    Throughput and the first relay's CPU s/GB; None when BENCH_RELAY_FLOOR is unset."""
    path = os.environ.get("BENCH_RELAY_FLOOR", "")
    if not path:
        return None
    first, second = free_port(), free_port()
    server_side = subprocess.Popen([path, str(second), str(iperf_port)])
    client_side = subprocess.Popen([path, str(first), str(second)])
    try:
        wait_for(lambda: listening_quietly(first) and listening_quietly(second), 10, "the relay floor's ports")
        out, raw = {}, {}
        for streams, rev, name, cpu_key in throughput_cases():
            c0, s0 = cpu_seconds(client_side.pid), cpu_seconds(server_side.pid)
            rate, moved = iperf(first, streams, rev)
            gb = moved / 1e9
            raw[name], raw[cpu_key] = rate, (cpu_seconds(client_side.pid) - c0) / gb
            out[name] = f"{rate / 1e6:.0f} MB/s"
            out[cpu_key] = f"relay {raw[cpu_key]:.2f}, second relay {(cpu_seconds(server_side.pid) - s0) / gb:.2f}"
        return out, raw
    finally:
        terminate(client_side)
        terminate(server_side)


def main():
    tmp = tempfile.mkdtemp()
    which = os.environ.get("BENCH_TUNNEL", "python")
    user, _, password = os.environ.get("BENCH_TUNNEL_AUTH", f"{TUNNEL_USER}:{TUNNEL_PASSWORD}").partition(":")
    reference = os.environ.get("BENCH_REFERENCE_CLIENT", "")
    swift = None
    creds = ["--tunnel-user", user, "--tunnel-password", password]
    if which == "python":
        cp = ControlPlane(tmp, ["--keepalive", "25"] + creds)
        url, fingerprint, server_pid, server_name = cp.tunnel_url, cp.fingerprint, cp.proc.pid, "Python chisel-v3 test server"
    elif which == "swift":
        swift = SwiftTunnelServer(tmp)
        cp = ControlPlane(tmp, tunnel=swift)
        url, fingerprint, server_pid, server_name = swift.url, swift.fingerprint, swift.proc.pid, "pipeops-agent tunnel-server"
    elif which.startswith("http"):
        url, fingerprint = which, os.environ.get("BENCH_TUNNEL_FINGERPRINT", "")
        server_pid, server_name = int(os.environ.get("BENCH_TUNNEL_PID", "0") or 0), which
        cp = ControlPlane(tmp, ["--external-tunnel-url", url, "--external-tunnel-fingerprint", fingerprint] + creds)
    else:
        raise SystemExit(f"BENCH_TUNNEL={which!r}: expected python, swift or a URL (http://host:port)")
    echo = EchoServer()
    ip = free_port()
    iperf_srv = subprocess.Popen(["iperf3", "-s", "-p", str(ip)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent, ref_proc = None, None
    try:
        columns = {}
        # One agent per loop backend, one after the other through the same server.
        for backend in BACKENDS:
            agent = Agent(tmp, cp.api_url, {"iperf": f"127.0.0.1:{ip}", "echo": f"127.0.0.1:{echo.port}"},
                          env={"PIPEOPS_REACTOR_BACKEND": backend}, name=f"agent-{backend}", log_level="info")
            r_iperf, r_echo = free_port(), free_port()
            cp.require_tunnel({"iperf": r_iperf, "echo": r_echo})
            wait_for(lambda: listening(r_iperf) and listening(r_echo), 30, f"the agent's reverse ports ({backend})")
            time.sleep(0.5)
            columns[f"agent ({backend})"] = measure(agent.proc.pid, server_pid, r_iperf, r_echo)
            agent.stop()
            agent = None
        if reference:
            q_iperf, q_echo = free_port(), free_port()
            args = [reference, "client", "--auth", f"{user}:{password}"] + (["--fingerprint", fingerprint] if fingerprint else []) + \
                   [url, f"R:127.0.0.1:{q_iperf}:127.0.0.1:{ip}", f"R:127.0.0.1:{q_echo}:127.0.0.1:{echo.port}"]
            ref_proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "reference.log"), "w"))
            wait_for(lambda: listening(q_iperf) and listening(q_echo), 30, f"the reference client's reverse ports (log {tmp}/reference.log)")
            time.sleep(0.5)
            columns["reference"] = measure(ref_proc.pid, server_pid, q_iperf, q_echo)
        direct_text, direct_raw = direct(ip, echo.port)
        floor = relay_floor(ip)
        floor_name = "relay floor (C: read, AES-128-GCM, write; two in series)"
        if floor:
            columns[floor_name] = floor
        machine = subprocess.run(["bash", "-c", "source bench/common.sh >/dev/null 2>&1; machine_line"],
                                 capture_output=True, text=True).stdout.strip()
        names = list(columns)
        agents = [n for n in names if n.startswith("agent")]
        ratio_columns = [(f"{n} / direct", n, direct_raw) for n in agents] + \
                        ([(f"{n} / floor", n, floor[1]) for n in agents] if floor else [])
        out = [f"\n## Tunnel through {server_name}{' (smoke run)' if SMOKE else ''}: {machine}\n",
               "| measure | " + " | ".join(n if n == floor_name else f"{n} through the tunnel" for n in names) +
               " | direct loopback | " + " | ".join(title for title, _, _ in ratio_columns) + " |",
               "|---|" + "---|" * (len(names) + 1 + len(ratio_columns))]
        for key in columns[names[0]][0]:
            ratios = [f"{columns[n][1][key] / base[key]:.3f} x" if key in columns[n][1] and key in base else ""
                      for _, n, base in ratio_columns]
            cells = [columns[n][0].get(key, "") for n in names]
            out.append(f"| {key} | " + " | ".join(cells) + f" | {direct_text.get(key, '')} | " + " | ".join(ratios) + " |")
        if floor:
            out.append("\nfloor: two relay-floor processes in series between the same iperf3 ends (bench/relay-floor.c), "
                       "where the agent and the tunnel server sit; its CPU is the first relay's, the agent's place")
        if not reference:
            out.append("\nreference client: skipped (set BENCH_REFERENCE_CLIENT=/path/to/chisel to compare one)")
        text = "\n".join(out) + "\n"
        print(text)
        if not SMOKE:
            with open("bench/results/tunnel.md", "a") as f:
                f.write(text)
    finally:
        if ref_proc:
            terminate(ref_proc)
        if agent:
            agent.stop()
        iperf_srv.terminate()
        echo.stop()
        cp.stop()
        if swift:
            swift.stop()


if __name__ == "__main__":
    main()
