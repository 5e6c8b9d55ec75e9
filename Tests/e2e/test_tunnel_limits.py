"""End to end: tunnel.max_channels through the real chisel path (issue 15, deliverable 1).

The control-plane double's chisel-v3 server opens a channel per connection to a reverse port;
over the limit the agent refuses it with SSH's `resource shortage`, which that server logs, and
the agent logs the hits at warning once per interval instead of once per refusal."""

import socket

from harness import free_port, wait_for
from harness import up_tunnel


def refused(sock: socket.socket) -> bool:
    """The tunnel server closes a client whose channel the agent refused."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_channels_over_max_channels_are_refused_with_resource_shortage(cp, echo, agents):
    agent = agents(cp.api_url, {"echo": f"127.0.0.1:{echo.port}"}, tunnel_yaml="  max_channels: 2\n")
    remote = free_port()
    up_tunnel(cp, agent, {"echo": remote})
    held = [socket.create_connection(("127.0.0.1", remote), timeout=10) for _ in range(2)]
    for s in held:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
    for _ in range(5):
        extra = socket.create_connection(("127.0.0.1", remote), timeout=10)
        extra.sendall(b"x")
        assert refused(extra), "a channel over tunnel.max_channels was bridged"
        extra.close()
    # The tunnel server heard why.
    wait_for(lambda: "rejected: resource shortage" in open(cp.log_path).read(), what="the server's rejection log")
    # Logged at warning: the first hit at once, the other four together when the 10 s interval
    # ends, not a line per refusal.
    def limit_lines():
        return [l for l in agent.logs() if l.get("msg", "").startswith("tunnel channels refused")]
    wait_for(lambda: sum(int(l["hits"]) for l in limit_lines()) == 5, timeout=30, what="five hits logged")
    lines = limit_lines()
    assert [l["hits"] for l in lines] == ["1", "4"], lines
    assert all(l["level"] == "warning" and l["max_channels"] == "2" for l in lines), lines
    assert lines[-1]["refused_at_channel_limit"] == "5", lines
    # The two channels within the limit still work, and the tunnel stayed up.
    for s in held:
        s.sendall(b"still here")
        assert s.recv(10) == b"still here"
        s.close()
    assert agent.get("/ready").json()["checks"]["tunnel"]["ok"] is True
    # /metrics counts them, by forward and limit.
    metrics = agent.get("/metrics").text
    assert 'pipeops_tunnel_channels_refused_total{forward="echo",limit="channels"} 5' in metrics, metrics
    assert 'pipeops_tunnel_channels_refused_total{forward="echo",limit="pending_dials"} 0' in metrics
