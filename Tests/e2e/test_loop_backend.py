"""reactor.backend on the real binary: io_uring asked for by name runs on io_uring or refuses to
start saying why; refused here means by a real seccomp filter (Tests/Fixtures/seccomp, EPERM as
container runtimes' default profiles answer) or by the probe failure injected through
PIPEOPS_IO_URING_PROBE_FAIL; `auto` under the same filter starts (on epoll)."""
import os
import signal
import subprocess
import threading

import pytest

from harness import ROOT, agent_binary, free_port, terminate, wait_for

SECCOMP_SOURCE = os.path.join(ROOT, "Tests", "Fixtures", "seccomp", "deny-io-uring.c")


@pytest.fixture(scope="module")
def deny_io_uring(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("seccomp") / "deny-io-uring")
    subprocess.run(["cc", "-O2", "-Wall", "-o", out, SECCOMP_SOURCE], check=True)
    return out


def agent_command(tmp_path, backend: str | None) -> list[str]:
    """A standalone agent (no control plane, no tunnel) on a free port; backend None: not set."""
    command = [agent_binary(), "--log-format", "json", "--log-level", "info", "--port", str(free_port()),
               "--set", "pipeops.api_url=", "--set", "tunnel.enabled=false", "--set", f"state.path={tmp_path}/state.json"]
    return command + (["--set", f"reactor.backend={backend}"] if backend else [])


def environment(tmp_path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PIPEOPS_") or k == "PIPEOPS_AGENT_BIN"}
    e["HOME"] = str(tmp_path)
    e.update(extra)
    return e


def refused(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=20)


def started_on(command: list[str], env: dict[str, str], hangup: bool = False) -> str:
    """Starts the agent, waits for its `starting` line (with `hangup`, sends SIGHUP and waits for
    the reload line), stops it with SIGTERM, which must end it cleanly; returns all it logged."""
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    seen = lambda text: any(text in l for l in list(lines)) or proc.poll() is not None
    try:
        wait_for(lambda: seen("HTTP server listening"), 20, "the agent's listening line")
        if hangup:
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: seen("reload requested"), 20, "the reload line")
    finally:
        code = terminate(proc)
        reader.join(5)
    assert code == 0, "".join(lines)
    return "".join(lines)


def test_io_uring_by_name_runs_on_io_uring_and_takes_signals(tmp_path):
    log = started_on(agent_command(tmp_path, "io_uring"), environment(tmp_path), hangup=True)
    assert '"loop":"io_uring"' in log, log
    assert "reload requested (SIGHUP)" in log, log


def test_io_uring_by_name_under_seccomp_is_a_startup_error_that_says_why(tmp_path, deny_io_uring):
    r = refused([deny_io_uring] + agent_command(tmp_path, "io_uring"), environment(tmp_path))
    assert r.returncode == 1, r.stderr
    assert "reactor.backend is io_uring, which this system refuses" in r.stderr, r.stderr
    assert "EPERM" in r.stderr, r.stderr


def test_io_uring_by_name_with_an_injected_probe_failure_is_a_startup_error(tmp_path):
    r = refused(agent_command(tmp_path, "io_uring"),
                environment(tmp_path, PIPEOPS_IO_URING_PROBE_FAIL="ENOSYS"))
    assert r.returncode == 1, r.stderr
    assert "ENOSYS" in r.stderr, r.stderr


def test_auto_under_seccomp_starts_on_epoll(tmp_path, deny_io_uring):
    log = started_on([deny_io_uring] + agent_command(tmp_path, "auto"), environment(tmp_path))
    assert '"loop":"epoll"' in log, log


def test_the_environment_variable_chooses_the_backend(tmp_path):
    log = started_on(agent_command(tmp_path, None), environment(tmp_path, PIPEOPS_REACTOR_BACKEND="io_uring"))
    assert '"loop":"io_uring"' in log, log
