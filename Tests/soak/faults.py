"""The soak's faults: each one injected into a running rig, timed, and the agent's recovery
measured from the moment of the fault:

* control-plane restart (SIGKILL, started again on the same port): recovered at the first
  heartbeat the new control plane accepts; the tunnel should not notice at all;
* tunnel-server restart (SIGKILL, same port and key): recovered at the first tunnelled transfer
  that completes intact;
* local service outage (SIGKILL, back on the same port after a few seconds): likewise.

What the agent did is read from its own log lines between the fault and the recovery."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional

from framing import CorruptTransfer
from load import INTERRUPTIONS, transfer
from rig import SoakRig

# Every wait a deadline: an agent that has not recovered by then fails the soak.
RECOVERY_DEADLINE = 120.0
SERVICE_OUTAGE_SECONDS = 3.0
KINDS = ("control-plane restart", "tunnel-server restart", "local service outage")


@dataclass
class FaultRecord:
    kind: str
    at: float                     # monotonic, when the fault was injected
    at_wall: float
    restored: float = 0.0         # the peer is back (listening)
    recovered: Optional[float] = None
    recovered_wall: float = 0.0
    recovery_sign: str = ""
    agent_did: str = ""
    interrupted_attempts: int = 0
    corrupt_probes: list = field(default_factory=list)

    @property
    def recovery_seconds(self) -> Optional[float]:
        return None if self.recovered is None else self.recovered - self.at


def _log_wall(line: dict) -> float:
    try:
        return datetime.fromisoformat(line["time"].replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return 0.0


def agent_reaction(rig: SoakRig, start_wall: float, end_wall: float) -> str:
    """The agent's log messages in the window, most frequent first, e.g. `tunnel down; reconnecting x2`."""
    said = Counter(l.get("msg", "?") for l in rig.agent.logs() if start_wall - 0.5 <= _log_wall(l) <= end_wall + 1.0)
    if not said:
        return "nothing logged (unaffected)"
    return "; ".join(f"{msg} x{n}" if n > 1 else msg for msg, n in said.most_common(4))


def _probe_once(port: int, rng: random.Random) -> bool:
    payload = rng.randbytes(4096)
    try:
        asyncio.run(asyncio.wait_for(transfer(port, payload, 4096), 10))
        return True
    except INTERRUPTIONS:
        return False


def wait_until(check: Callable[[], bool], deadline: float) -> Optional[float]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return time.monotonic()
        time.sleep(0.1)
    return None


def first_intact_transfer(rig: SoakRig, rng: random.Random, record: FaultRecord) -> Optional[float]:
    def check() -> bool:
        try:
            return _probe_once(rig.remote_port, rng)
        except CorruptTransfer as exc:   # a probe is a transfer like any other: wrong bytes fail the soak
            record.corrupt_probes.append(str(exc))
            return False
    return wait_until(check, RECOVERY_DEADLINE)


def first_accepted_heartbeat(rig: SoakRig) -> Optional[float]:
    def check() -> bool:
        return any(r.get("status") == 200 for r in rig.cp.requests_for("heartbeat"))
    return wait_until(check, RECOVERY_DEADLINE)


def inject(rig: SoakRig, kind: str, rng: random.Random) -> FaultRecord:
    record = FaultRecord(kind=kind, at=time.monotonic(), at_wall=time.time())
    if kind == "control-plane restart":
        rig.restart_control_plane()
        record.restored = time.monotonic()
        record.recovered = first_accepted_heartbeat(rig)
        record.recovery_sign = "first heartbeat accepted by the new control plane"
    elif kind == "tunnel-server restart":
        rig.restart_tunnel_server()
        record.restored = time.monotonic()
        record.recovered = first_intact_transfer(rig, rng, record)
        record.recovery_sign = "first intact tunnelled transfer"
    elif kind == "local service outage":
        rig.local_service_outage(SERVICE_OUTAGE_SECONDS)
        record.restored = time.monotonic()
        record.recovered = first_intact_transfer(rig, rng, record)
        record.recovery_sign = "first intact tunnelled transfer"
    else:
        raise ValueError(f"unknown fault {kind!r}")
    end = record.recovered if record.recovered is not None else time.monotonic()
    record.recovered_wall = record.at_wall + (end - record.at)
    record.agent_did = agent_reaction(rig, record.at_wall, record.recovered_wall)
    return record


def schedule(measured_seconds: float, edge_seconds: float, gap_cap: float = 80.0) -> list[tuple[float, str]]:
    """Fault times (seconds into the measured phase), the kinds in turn, each at least once, all
    inside [edge, measured - edge] so the RSS windows at both ends see the load without faults.
    The gap is at most `gap_cap` (80 s: a control-plane restart every 4 minutes in long runs)."""
    window = measured_seconds - 2 * edge_seconds
    if window <= 0:
        raise ValueError(f"a measured phase of {measured_seconds:.0f} s leaves no room for faults")
    gap = min(gap_cap, window / len(KINDS))
    out, t, i = [], edge_seconds, 0
    while t <= edge_seconds + window - gap or i < len(KINDS):
        out.append((t, KINDS[i % len(KINDS)]))
        t += gap
        i += 1
    return out
