"""`make soak`: the release agent under churn and faults for SOAK_MINUTES (default 60; `make test`
runs 2), then the bounded-resource and correctness verdicts.

    load     100 tunnelled connections at once, each opening, moving a random payload both ways
             (digest checked at the far end) and closing, in a loop; slow consumers; a slowloris
             crowd on the agent's HTTP port (load.py)
    faults   control-plane restarts, tunnel-server restarts, the local service going away
             (faults.py), one after another with a gap, each at least once
    samples  every SOAK_SAMPLE_SECONDS (10): the agent's RSS and descriptors, transfers done,
             failures, whether /health answers

Phases: warm-up (load, each fault once, then idle: the descriptor baseline), measured (load and
faults; RSS read every second: the median over its first 30 s against the median over its last
30 s, both windows without faults), idle again (descriptors compared with the baseline class by class).

It fails if any transfer completed with wrong bytes, a transfer attempt failed outside a fault
that cuts the tunnel, a fault was not recovered from within its deadline, /health did not answer,
descriptors differ from the baseline (beyond the control-plane keep-alive connections, see
agent_resources.py), or RSS moved more than SOAK_RSS_TOLERANCE (0.10). Tables go to stdout and
.build/soak/<time>/ (with every peer's log)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from agent_resources import LOAD_CLASSES, fd_breakdown, fd_verdict, rss_kib, rss_verdict  # noqa: E402
from faults import KINDS, FaultRecord, inject, schedule, wait_until  # noqa: E402
from load import DRAIN_DEADLINE  # noqa: E402
from rig import ROOT_DIR, SoakRig  # noqa: E402

# Samples in each RSS window (first and last of the measured phase); no fault is scheduled inside.
RSS_WINDOW = 3
# A failed attempt this long after a recovery still belongs to the fault: it may have been
# dialled while the agent was bringing the forward back.
ATTRIBUTION_GRACE = 2.0
QUIESCE_DEADLINE = 60.0
# Faults that cut tunnelled connections. A control-plane restart must not: attempts that fail
# during one count as unexplained.
TUNNEL_CUTTING = ("tunnel-server restart", "local service outage")


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        sys.exit(f"soak: {name}={raw!r} is not a number")


class LoadProcess:
    """load.py as a child process; its JSON lines are collected by a reader thread."""

    def __init__(self, rig: SoakRig, churn: int, slow: int, slowloris: int, seed: int, log_path: str):
        self.counters: dict = {}
        self.failed_attempts: list[dict] = []
        self.corrupt: list[dict] = []
        self.lock = threading.Lock()
        self.stderr = open(log_path, "a")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "load.py"), "--port", str(rig.remote_port),
                                      "--status-port", str(rig.agent.port), "--churn", str(churn), "--slow", str(slow),
                                      "--slowloris", str(slowloris), "--seed", str(seed)],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                if ev["ev"] == "counters":
                    self.counters = ev
                elif ev["ev"] == "attempt_failed":
                    self.failed_attempts.append(ev)
                elif ev["ev"] == "corrupt":
                    self.corrupt.append(ev)

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.counters)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(DRAIN_DEADLINE + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        self.stderr.close()


def idle_descriptors(rig: SoakRig) -> Counter:
    """The agent's descriptors once the load's connections are gone (each has a deadline)."""
    pid = rig.agent.proc.pid
    wait_until(lambda: all(fd_breakdown(pid, rig.ports)[k] == 0 for k in LOAD_CLASSES), QUIESCE_DEADLINE)
    return fd_breakdown(pid, rig.ports)


class Sampler(threading.Thread):
    """RSS every second (for the verdict's medians), a full row every `period` (the table)."""

    def __init__(self, rig: SoakRig, load: LoadProcess, period: float, started: float):
        super().__init__(daemon=True)
        self.rig, self.load, self.period, self.started = rig, load, period, started
        self.rows: list[dict] = []
        self.rss_readings: list[tuple[float, int]] = []
        self.done = threading.Event()

    def health(self) -> str:
        try:
            return str(requests.get(f"http://127.0.0.1:{self.rig.agent.port}/health", timeout=30).status_code)
        except requests.RequestException as exc:
            return f"error: {type(exc).__name__}"

    def run(self) -> None:
        pid = self.rig.agent.proc.pid
        tick, per_row = 1, max(1, round(self.period))
        while not self.done.wait(max(0.0, self.started + tick - time.monotonic())):
            if not self.rig.agent.alive():
                self.rows.append({"t": time.monotonic() - self.started, "dead": True})
                return
            now = time.monotonic() - self.started
            self.rss_readings.append((now, rss_kib(pid)))
            if tick % per_row == 0:
                fds = fd_breakdown(pid, self.rig.ports)
                c = self.load.snapshot()
                self.rows.append({"t": round(now), "rss_kib": self.rss_readings[-1][1], "fds": sum(fds.values()),
                                  "service_conns": fds["local service"], "http_clients": fds["http clients"],
                                  "cp_conns": fds["control plane"], "ok": c.get("churn_ok", 0) + c.get("slow_ok", 0),
                                  "corrupt": c.get("churn_corrupt", 0) + c.get("slow_corrupt", 0),
                                  "failed_attempts": c.get("churn_attempts_failed", 0) + c.get("slow_attempts_failed", 0),
                                  "mib": c.get("bytes_checked", 0) / 2**20, "health": self.health()})
                print(sample_line(self.rows[-1]), flush=True)
            tick += 1


SAMPLE_HEADER = "| t (s) | RSS (MiB) | fds | service conns | http clients | cp conns | transfers ok | MiB checked | corrupt | failed attempts | /health |"


def sample_line(r: dict) -> str:
    if r.get("dead"):
        return f"| {r['t']:.0f} | agent exited | | | | | | | | | |"
    return (f"| {r['t']} | {r['rss_kib'] / 1024:.1f} | {r['fds']} | {r['service_conns']} | {r['http_clients']} | "
            f"{r['cp_conns']} | {r['ok']} | {r['mib']:.0f} | {r['corrupt']} | {r['failed_attempts']} | {r['health']} |")


def attribute(failed: list[dict], faults: list[FaultRecord]) -> tuple[Counter, list[dict]]:
    """Failed attempts per fault kind, and those no tunnel-cutting fault explains."""
    per_kind: Counter = Counter()
    unexplained = []
    for a in failed:
        owner = next((f for f in faults if f.kind in TUNNEL_CUTTING and a["end"] >= f.at
                      and a["start"] <= (f.recovered if f.recovered is not None else float("inf")) + ATTRIBUTION_GRACE), None)
        if owner is None:
            unexplained.append(a)
        else:
            owner.interrupted_attempts += 1
            per_kind[owner.kind] += 1
    return per_kind, unexplained


def fault_table(faults: list[FaultRecord], began: float, measured_from: float) -> list[str]:
    out = ["| at (s) | phase | fault | peer back after (s) | recovered after (s) | recovery sign | interrupted attempts (retried) | what the agent did (its log) |",
           "|---|---|---|---|---|---|---|---|"]
    for f in faults:
        rec = f"{f.recovery_seconds:.2f}" if f.recovery_seconds is not None else "NOT RECOVERED"
        phase = "measured" if f.at >= measured_from else "warm-up"
        out.append(f"| {f.at - began:.0f} | {phase} | {f.kind} | {f.restored - f.at:.2f} | {rec} | {f.recovery_sign} | "
                   f"{f.interrupted_attempts} | {f.agent_did.replace('|', '/')} |")
    return out


def merged(a: dict, b: dict) -> dict:
    """Two loads' counters added up (the loris answers too)."""
    out = {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b) if k not in ("ev", "t", "loris_answers", "loris_held_max")}
    out["loris_answers"] = dict(Counter(a.get("loris_answers", {})) + Counter(b.get("loris_answers", {})))
    out["loris_held_max"] = max(a.get("loris_held_max", 0), b.get("loris_held_max", 0))
    return out


def main() -> int:
    minutes = env_number("SOAK_MINUTES", 60)
    period = env_number("SOAK_SAMPLE_SECONDS", 10)
    tolerance = env_number("SOAK_RSS_TOLERANCE", 0.10)
    churn = int(env_number("SOAK_CONCURRENCY", 100))
    short = minutes < 10
    # Warm-up: the load alone, then each fault once while it runs (so the agent's rings, pools and
    # reconnect paths have all been through once before the RSS baseline), then idle.
    # In long runs the load alone runs for 15 % of the time first (at most 10 min): the 15-minute
    # run's RSS settled 1 to 2 MiB above its first minute over its first five.
    warm_lead, warm_gap = (10.0, 5.0) if short else (min(600.0, 0.15 * minutes * 60), 20.0)
    edge = RSS_WINDOW * period
    outdir = os.path.join(ROOT_DIR, ".build", "soak", time.strftime("%Y%m%dT%H%M%S"))
    os.makedirs(outdir)
    print(f"soak: {minutes:g} min, {churn} concurrent transfers; logs and tables in {outdir}", flush=True)
    began = time.monotonic()

    rig = SoakRig(outdir)
    rng = random.Random(7)
    problems: list[str] = []
    faults: list[FaultRecord] = []
    loads: list[LoadProcess] = []

    def run_fault(kind: str, started: float) -> None:
        record = inject(rig, kind, rng)
        faults.append(record)
        rec = f"{record.recovery_seconds:.2f} s" if record.recovery_seconds is not None else "NOT RECOVERED"
        print(f"soak: {kind} at {record.at - started:.0f} s: recovered after {rec}", flush=True)

    try:
        loads.append(LoadProcess(rig, churn, 4, 20, seed=1, log_path=os.path.join(outdir, "load.log")))
        warm_started = time.monotonic()
        time.sleep(warm_lead)
        for kind in KINDS:
            run_fault(kind, warm_started)
            time.sleep(warm_gap)
        loads[0].stop()
        warm_fds = idle_descriptors(rig)
        print(f"soak: warm-up done after {time.monotonic() - began:.0f} s; idle: {sum(warm_fds.values())} descriptors "
              f"{dict(sorted(warm_fds.items()))}", flush=True)

        measured = max(minutes * 60 - (time.monotonic() - began), 2 * edge + 30)
        plan = schedule(measured, edge)
        print(f"soak: measured phase {measured:.0f} s with {len(plan)} faults", flush=True)
        loads.append(LoadProcess(rig, churn, 4, 20, seed=2, log_path=os.path.join(outdir, "load.log")))
        started = time.monotonic()
        sampler = Sampler(rig, loads[1], period, started)
        print(SAMPLE_HEADER + "\n" + "|---" * 11 + "|", flush=True)
        sampler.start()
        for at, kind in plan:
            time.sleep(max(0.0, started + at - time.monotonic()))
            run_fault(kind, started)
        time.sleep(max(0.0, started + measured + 0.5 - time.monotonic()))
        sampler.done.set()
        sampler.join(60)
        loads[1].stop()
        idle_descriptors(rig)
        # The control-plane keep-alive connections settle on the agent's schedule: wait for it.
        wait_until(lambda: not fd_verdict(warm_fds, fd_breakdown(rig.agent.proc.pid, rig.ports)), QUIESCE_DEADLINE)
        end_fds = fd_breakdown(rig.agent.proc.pid, rig.ports)
        violations = rig.cp.violations()
        alive = rig.agent.alive()
    finally:
        for load in loads:
            if load.proc.poll() is None:
                load.stop()
        code = rig.stop()

    # Verdicts.
    rows = [r for r in sampler.rows if not r.get("dead")]
    if len(rows) != len(sampler.rows) or not alive:
        problems.append("the agent exited during the soak")
    base, last, rss_problems = rss_verdict(sampler.rss_readings, edge, measured, tolerance)
    problems += rss_problems
    problems += [f"descriptors: {p}" for p in fd_verdict(warm_fds, end_fds)]
    counters = merged(loads[0].snapshot(), loads[1].snapshot())
    corrupt = loads[0].corrupt + loads[1].corrupt + [{"probe": p} for f in faults for p in f.corrupt_probes]
    if corrupt:
        problems.append(f"{len(corrupt)} transfers completed with wrong bytes: {corrupt[:3]}")
    failed = loads[0].failed_attempts + loads[1].failed_attempts
    per_kind, unexplained = attribute(failed, faults)
    if unexplained:
        problems.append(f"{len(unexplained)} transfer attempts failed outside any tunnel-cutting fault: "
                        f"{[(round(a['start'] - began, 1), a['kind'], a['error']) for a in unexplained[:5]]}")
    for f in faults:
        if f.recovered is None:
            problems.append(f"no recovery from the {f.kind} at {f.at - began:.0f} s")
    measured_kinds = {f.kind for f in faults if f.at >= started}
    if set(KINDS) - measured_kinds:
        problems.append(f"faults never injected in the measured phase: {sorted(set(KINDS) - measured_kinds)}")
    bad_health = [r for r in rows if r["health"] != "200"]
    if bad_health:
        problems.append(f"/health did not answer 200 at {len(bad_health)} samples: {[(r['t'], r['health']) for r in bad_health[:5]]}")
    loris = counters.get("loris_answers", {})
    if "never cut (10 min)" in loris:
        problems.append("a slowloris client was never cut by the agent")
    if violations:
        problems.append(f"the control plane saw contract violations: {violations[:3]}")
    if code != 0:
        problems.append(f"the agent exited with status {code} on SIGTERM")
    ok = counters.get("churn_ok", 0) + counters.get("slow_ok", 0)
    if counters.get("unfinished_at_stop", 0):
        problems.append(f"{counters['unfinished_at_stop']} transfers under way at the end did not finish within "
                        f"{DRAIN_DEADLINE:.0f} s (a hang)")

    report = [f"Measured phase from {started - began:.0f} s; fault times are from the start of the soak.", "",
              "## Samples (measured phase)", "", SAMPLE_HEADER, "|---" * 11 + "|"] + [sample_line(r) for r in sampler.rows]
    report += ["", "## Faults", ""] + fault_table(faults, began, started)
    report += ["", "## Totals", "",
               f"* transfers intact: {ok} ({counters.get('churn_ok', 0)} churn, {counters.get('slow_ok', 0)} slow consumers), "
               f"{counters.get('unfinished_at_stop', 0)} unfinished at the end, "
               f"{counters.get('bytes_checked', 0) / 2**20:.0f} MiB checked both ways; "
               f"{counters.get('churn_ok_after_retry', 0) + counters.get('slow_ok_after_retry', 0)} of them completed on a retry",
               f"* wrong bytes: {len(corrupt)}",
               f"* failed attempts (retried): {len(failed)}: " + ", ".join(f"{n} in {k}" for k, n in per_kind.items())
               + f"; unexplained: {len(unexplained)}",
               f"* slowloris connections ended by the agent, by its answer: {loris}, longest held {counters.get('loris_held_max', 0)} s",
               f"* RSS (read every second): {base / 1024:.1f} MiB after warm-up (median over the first {edge:.0f} s), "
               f"{last / 1024:.1f} MiB at the end (median over the last {edge:.0f} s): {100 * (last - base) / base if base else 0:+.1f} %",
               f"* descriptors idle after warm-up {sum(warm_fds.values())} {dict(sorted(warm_fds.items()))}, "
               f"idle at the end {sum(end_fds.values())} {dict(sorted(end_fds.items()))}",
               f"* verdict: {'PASS' if not problems else 'FAIL'}"] + [f"  * {p}" for p in problems]
    text = "\n".join(report)
    print("\n" + text, flush=True)
    with open(os.path.join(outdir, "soak.md"), "w") as f:
        f.write(f"# Soak, {minutes:g} min, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{text}\n")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
