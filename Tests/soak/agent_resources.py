"""What the soak measures of the agent's process, and the bounded-resource verdicts.

RSS is /proc/<pid>/status VmRSS. File descriptors are /proc/<pid>/fd, each TCP socket classified
by its ports (from /proc/<pid>/net/tcp and tcp6), so a difference between two counts says what
it is: a connection to the control plane, the tunnel, the local service, a client of the agent's
HTTP port, or something else (epoll, timers, listeners, files)."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass

TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Ports:
    control_plane: int
    tunnel_server: int
    local_service: int
    agent_http: int


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _tcp_sockets(pid: int) -> dict[str, tuple[int, int, str]]:
    """socket inode -> (local port, remote port, state) for the process's network namespace."""
    out: dict[str, tuple[int, int, str]] = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                    out[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
        except FileNotFoundError:
            continue
    return out


def fd_breakdown(pid: int, ports: Ports) -> Counter:
    """The process's open descriptors by class; raises FileNotFoundError once it is gone."""
    tcp = _tcp_sockets(pid)
    kinds: Counter = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:   # closed between listdir and readlink
            continue
        if target.startswith("socket:["):
            entry = tcp.get(target[8:-1])
            if entry is None:
                kinds["socket (not tcp)"] += 1
                continue
            local, remote, state = entry
            if state == TCP_LISTEN:
                kinds["listener"] += 1
            elif remote == ports.control_plane:
                kinds["control plane"] += 1
            elif remote == ports.tunnel_server:
                kinds["tunnel"] += 1
            elif remote == ports.local_service:
                kinds["local service"] += 1
            elif local == ports.agent_http:
                kinds["http clients"] += 1
            else:
                kinds["tcp (other)"] += 1
        else:
            kinds["anon_inode" if target.startswith("anon_inode:") else "pipe" if target.startswith("pipe:") else "file"] += 1
    return kinds


# Connections that come and go with the agent's own schedule rather than with the load: the
# heartbeat and the tunnel-status poll each run every second and may each hold one keep-alive
# connection to the control plane at the moment of a count (Reactor's HTTPClient pools them,
# idle for up to 30 s). A restart of the control plane replaces them; it must not add to them.
CONTROL_PLANE_CONNECTIONS_ALLOWED = 2
# What is left when the load has stopped must equal its warm-up value exactly.
LOAD_CLASSES = ("local service", "http clients")


def fd_verdict(warm: Counter, end: Counter) -> list[str]:
    """Problems with the descriptors at the end against those after warm-up (both idle: no load)."""
    problems = []
    for kind in sorted(set(warm) | set(end)):
        if kind == "control plane":
            if end[kind] > CONTROL_PLANE_CONNECTIONS_ALLOWED:
                problems.append(f"{end[kind]} control-plane connections at the end "
                                f"(at most {CONTROL_PLANE_CONNECTIONS_ALLOWED}: heartbeat and poll)")
        elif end[kind] != warm[kind]:
            problems.append(f"{kind}: {warm[kind]} after warm-up, {end[kind]} at the end")
    return problems


def rss_verdict(readings: list[tuple[float, int]], window: float, end: float,
                tolerance: float) -> tuple[float, float, list[str]]:
    """`readings`: (seconds into the measured phase, RSS KiB), one a second. The median of those in
    the first `window` seconds (right after warm-up) against the median of those in the last
    `window` before `end`: RSS moves by a MiB or so with the number of connections open at the
    instant, and medians over some 30 readings do not follow one burst."""
    first = [kib for t, kib in readings if t <= window]
    last = [kib for t, kib in readings if t >= end - window]
    if len(first) < 3 or len(last) < 3:
        return 0.0, 0.0, [f"too few RSS readings: {len(first)} after warm-up, {len(last)} at the end"]
    base, final = statistics.median(first), statistics.median(last)
    problems = []
    if abs(final - base) > tolerance * base:
        problems.append(f"RSS median {final / 1024:.1f} MiB over the last {window:.0f} s against "
                        f"{base / 1024:.1f} MiB over the first {window:.0f} s after warm-up: "
                        f"{100 * (final - base) / base:+.1f} % (allowed ±{100 * tolerance:.0f} %)")
    return base, final, problems
