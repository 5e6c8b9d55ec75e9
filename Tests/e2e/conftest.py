import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import (Agent, Browser, ControlPlane, EchoServer, HelloServer, KubeAPIServer, Prometheus,  # noqa: E402
                     SwiftTunnelServer)


@pytest.fixture
def cp(tmp_path):
    c = ControlPlane(str(tmp_path))
    yield c
    c.stop()


@pytest.fixture(params=["python", "swift"])
def tunnel_cp(request, tmp_path):
    """The control-plane double handing out its own chisel server (python) or
    `pipeops-agent tunnel-server` (swift): the tunnel tests run against both."""
    server = SwiftTunnelServer(str(tmp_path)) if request.param == "swift" else None
    c = ControlPlane(str(tmp_path), tunnel=server)
    yield c
    c.stop()
    if server:
        server.stop()


@pytest.fixture
def hello():
    h = HelloServer()
    yield h
    h.stop()


@pytest.fixture
def echo():
    e = EchoServer()
    yield e
    e.stop()


@pytest.fixture
def prometheus(tmp_path):
    """Starts a Prometheus server scraping the given targets; stopped after the test."""
    started = []

    def start(targets, **kwargs):
        p = Prometheus(str(tmp_path), targets, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def agents(tmp_path):
    started = []

    class Starter:
        def __call__(self, *args, **kwargs):
            a = Agent(str(tmp_path), *args, **kwargs)
            started.append(a)
            return a

        def restart(self, agent):
            """The same agent (config, state, port) started again, e.g. after editing its config."""
            a = Agent.again(agent)
            started.append(a)
            return a

    yield Starter()
    for a in started:
        a.stop()
    # A run with PIPEOPS_REACTOR_BACKEND (scripts/test.sh runs test_tunnel.py once on io_uring)
    # proves each agent really ran on that backend: its starting line names the loop.
    wanted = os.environ.get("PIPEOPS_REACTOR_BACKEND")
    if wanted:
        for a in started:
            loops = {l["loop"] for l in a.logs() if "starting" in str(l.get("msg", "")) and "loop" in l}
            assert loops == {wanted}, f"agent ran on {loops or 'no loop it logged'}, not {wanted}"


@pytest.fixture
def kube(tmp_path):
    k = KubeAPIServer(str(tmp_path))
    yield k
    k.stop()


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.quit()
