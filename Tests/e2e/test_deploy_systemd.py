"""The VM install: deployments/systemd/pipeops-agent.service passes `systemd-analyze verify`
and rates at most 2.0 ("OK") in `systemd-analyze security`; deployments/install.sh into a
DESTDIR is idempotent (twice gives the same tree), keeps an edited config, needs a token, and
installs a config the agent loads. (No systemd runs as PID 1 on these machines, so the unit is
checked offline, against a root that holds the installed files and systemd's own units.)"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess

import pytest

from harness import ROOT, agent_binary

INSTALL = os.path.join(ROOT, "deployments", "install.sh")
UNIT = "pipeops-agent.service"
MAX_EXPOSURE = 2.0


def install(destdir: str, token: str | None = "t0ken", **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PIPEOPS_")}
    e.update(DESTDIR=destdir, BINARY=agent_binary(), **env)
    if token is not None:
        e["PIPEOPS_TOKEN"] = token
    return subprocess.run([INSTALL], capture_output=True, text=True, timeout=120, env=e)


@pytest.fixture
def installed(tmp_path) -> str:
    dest = str(tmp_path / "root")
    proc = install(dest)
    assert proc.returncode == 0, proc.stderr
    return dest


def tree(root: str) -> dict[str, tuple]:
    """path -> (mode, owner, content hash) for every file and directory under `root`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[os.path.relpath(path, root)] = (oct(st.st_mode), st.st_uid, st.st_gid, digest)
    return out


def verify_root(installed: str, tmp_path) -> str:
    """The installed files plus systemd's own units and /bin/kill (ExecReload), so that
    `systemd-analyze --root` resolves every unit and command the way a real machine would."""
    root = str(tmp_path / "verify-root")
    shutil.copytree(installed, root, symlinks=True)
    shutil.copytree("/usr/lib/systemd/system", os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy2(shutil.which("kill", path="/bin:/usr/bin"), os.path.join(root, "bin", "kill"))
    return root


def test_unit_passes_systemd_analyze_verify(installed, tmp_path):
    root = verify_root(installed, tmp_path)
    unit = os.path.join(root, "etc/systemd/system", UNIT)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit], capture_output=True, text=True,
                          timeout=120)
    # verify only logs unknown keys and bad values; any output is a finding.
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    # The control: a misspelled directive is reported.
    text = open(unit).read()
    open(unit, "w").write(text.replace("ProtectHome=yes", "ProtectHomme=yes"))
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit], capture_output=True, text=True,
                          timeout=120)
    assert "Unknown key 'ProtectHomme'" in proc.stderr


def test_unit_exposure_is_at_most_two(installed, tmp_path):
    root = verify_root(installed, tmp_path)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", "--no-pager", UNIT],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"Overall exposure level for pipeops-agent\.service: (\d+\.\d+) (\w+)", proc.stdout)
    assert m, proc.stdout[-2000:]
    score, verdict = float(m.group(1)), m.group(2)
    print(f"systemd-analyze security: {score} {verdict}")
    assert score <= MAX_EXPOSURE and verdict == "OK", proc.stdout
    # The settings the issue names are all there (the score alone could come from others).
    unit = open(os.path.join(ROOT, "deployments", "systemd", UNIT)).read()
    for line in ("User=pipeops", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes",
                 "StateDirectory=pipeops", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service"):
        assert line in unit, line


def test_install_twice_into_a_destdir_gives_the_same_tree(installed):
    first = tree(installed)
    proc = install(installed)
    assert proc.returncode == 0, proc.stderr
    assert tree(installed) == first
    assert sorted(p for p, (mode, *_) in first.items() if mode.startswith("0o100")) == [
        "etc/pipeops/agent.env", "etc/pipeops/agent.yaml", "etc/systemd/system/pipeops-agent.service",
        "usr/lib/sysusers.d/pipeops-agent.conf", "usr/local/bin/pipeops-agent"]
    assert first["etc/pipeops/agent.env"][0] == "0o100600"          # the token: root only
    assert first["usr/local/bin/pipeops-agent"][0] == "0o100755"
    assert first["usr/local/bin/pipeops-agent"][3] == hashlib.sha256(open(agent_binary(), "rb").read()).hexdigest()
    assert "no user created, no service started" in proc.stdout


def test_install_keeps_an_edited_config_and_takes_a_new_token(installed):
    config = os.path.join(installed, "etc/pipeops/agent.yaml")
    with open(config, "a") as f:
        f.write("logging:\n  level: debug\n")
    edited = open(config).read()
    proc = install(installed, token="n3w-token", PIPEOPS_CLUSTER_NAME="edge-1")
    assert proc.returncode == 0, proc.stderr
    assert open(config).read() == edited
    env = open(os.path.join(installed, "etc/pipeops/agent.env")).read()
    assert "PIPEOPS_TOKEN='n3w-token'\n" in env and "PIPEOPS_CLUSTER_NAME='edge-1'\n" in env
    # Without a token the existing one is kept.
    assert install(installed, token=None).returncode == 0
    assert open(os.path.join(installed, "etc/pipeops/agent.env")).read() == env


def test_install_needs_a_token_and_refuses_quotes(tmp_path):
    proc = install(str(tmp_path / "a"), token=None)
    assert proc.returncode == 1 and "PIPEOPS_TOKEN is required" in proc.stderr
    proc = install(str(tmp_path / "b"), token="it's")
    assert proc.returncode == 1 and "must not contain a quote" in proc.stderr


def test_installed_agent_loads_the_installed_config_and_token(installed):
    env = {"PATH": os.environ["PATH"]}
    for line in open(os.path.join(installed, "etc/pipeops/agent.env")):
        if "=" in line and not line.startswith("#"):
            name, value = line.rstrip("\n").split("=", 1)
            env[name] = value.strip("'")
    env["PIPEOPS_STATE_PATH"] = "/var/lib/pipeops/state.json"  # the unit's Environment=
    proc = subprocess.run([os.path.join(installed, "usr/local/bin/pipeops-agent"), "config", "print",
                           "--config", os.path.join(installed, "etc/pipeops/agent.yaml")],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'token: "***"' in proc.stdout
    assert 'local_addr: "localhost:6443"' in proc.stdout and 'local_addr: "localhost:10250"' in proc.stdout
    assert 'path: "/var/lib/pipeops/state.json"' in proc.stdout
