"""The soak's peers, started with the e2e harness (Tests/e2e/harness.py): our tunnel server
(`pipeops-agent tunnel-server`), the control-plane test double handing it out with the soak
forward REQUIRED from its first answer, the transfer service behind the forward and the release
agent. Each peer can be restarted on its own port, which is what the faults do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness import ROOT as ROOT_DIR, Agent, ControlPlane, SwiftTunnelServer, free_port, terminate  # noqa: E402,F401

from agent_resources import Ports  # noqa: E402

FORWARD = "soak"
SERVICE = os.path.join(HERE, "transfer_service.py")


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: the peer crashes, with no goodbye on any connection."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


class TransferService:
    """transfer_service.py as a child process on a fixed port (the forward's local address)."""

    def __init__(self, workdir: str, port: int):
        self.port = port
        self.log = open(os.path.join(workdir, "transfer-service.log"), "a")
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, SERVICE, "--port", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the transfer service did not start on port {self.port}")
        assert json.loads(line)["port"] == self.port

    def stop(self) -> None:
        terminate(self.proc)


class SoakRig:
    def __init__(self, workdir: str, agent_yaml: str = ""):
        self.workdir = workdir
        self.tunnel = SwiftTunnelServer(workdir)
        self.service = TransferService(workdir, free_port())
        self.api_port = free_port()
        self.remote_port = free_port()
        self.cp_generation = 0
        self.cp = self._start_control_plane()
        # tunnel.max_pending_dials (64 by default) is raised above the load's 104 connections: on a
        # loaded machine a burst of channel opens can outrun the loop's dials, and the refusal (by
        # design; test_tunnel_limits.py covers it) would look to the client like any other reset.
        self.agent = Agent(workdir, self.cp.api_url, {FORWARD: f"127.0.0.1:{self.service.port}"},
                           log_level="info", extra_yaml=agent_yaml, name="soak-agent",
                           tunnel_yaml="  max_pending_dials: 128\n")
        self.ports = Ports(control_plane=self.api_port, tunnel_server=self.tunnel.port,
                           local_service=self.service.port, agent_http=self.agent.port)
        self.cp.wait_ports({self.remote_port}, timeout=60)
        self.agent.wait_log(lambda l: l.get("msg") == "tunnel connected", timeout=60, what="tunnel connected")

    def _start_control_plane(self) -> ControlPlane:
        """On the same API port each time, with its clusters in a state file, so the agent's
        registration stays valid across restarts, and the forward REQUIRED from the start."""
        self.cp_generation += 1
        logdir = os.path.join(self.workdir, f"controlplane-{self.cp_generation}")
        os.makedirs(logdir, exist_ok=True)
        return ControlPlane(logdir, tunnel=self.tunnel, extra=[
            "--api-port", str(self.api_port), "--state-file", os.path.join(self.workdir, "controlplane-state.json"),
            "--initial-status", "REQUIRED", "--forward", f"{FORWARD}={self.remote_port}"])

    # The faults. Each returns when the peer is back (listening again), not when the agent has
    # recovered: that is the fault runner's to measure.

    def restart_control_plane(self) -> None:
        kill(self.cp.proc)
        self.cp.log.close()
        self.cp = self._start_control_plane()

    def restart_tunnel_server(self) -> None:
        kill(self.tunnel.proc)
        self.tunnel.reader.join(5)
        self.tunnel.start()   # the same port and key (harness: a restart)

    def local_service_outage(self, seconds: float) -> None:
        kill(self.service.proc)
        time.sleep(seconds)
        self.service.start()

    def stop(self) -> int:
        code = self.agent.stop()
        with open(os.path.join(self.workdir, "agent.log"), "w") as f:
            f.write(self.agent.log_text() + "\n")
        self.cp.stop()
        self.tunnel.stop()
        self.service.stop()
        return code
