"""The shipped agent is one static executable (scripts/build-release.sh). These tests prove
what that promises: no program interpreter or shared library is needed, and DNS works through
c-ares on the loop, with no thread of its own. The DNS test runs in a network and mount
namespace the test creates, with its own /etc/resolv.conf pointing at a DNS responder on that
namespace's 127.0.0.1, so no query leaves the machine."""
import os
import shutil
import struct
import subprocess
import textwrap

import pytest

from harness import ROOT, TOKEN, agent_binary, free_port


def program_headers(path: str) -> list[int]:
    """The p_type of every ELF64 program header."""
    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF" and head[4] == 2, "not an ELF64 file"
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        types = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            types.append(struct.unpack("<I", f.read(4))[0])
        return types


def test_the_release_agent_needs_no_interpreter_or_shared_library():
    PT_INTERP, PT_DYNAMIC = 3, 2
    types = program_headers(agent_binary())
    assert PT_INTERP not in types, "the agent asks for ld.so: it is not a static executable"
    # A static-pie keeps a DYNAMIC segment for its own relocations, but must need no library.
    out = subprocess.run(["readelf", "-d", agent_binary()], capture_output=True, text=True).stdout
    assert "(NEEDED)" not in out, out
    if PT_DYNAMIC in types:
        assert "Shared library" not in out, out


def test_dns_through_c_ares_on_one_thread_in_the_static_binary(tmp_path):
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to give the test its own network namespace")
    api_port, tunnel_port, agent_port = free_port(), free_port(), free_port()
    queries = tmp_path / "queries.log"
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "agent.yaml").write_text(textwrap.dedent(f"""\
        agent:
          port: {agent_port}
        pipeops:
          api_url: "http://cp.pipeops.test:{api_port}"
          token: "{TOKEN}"
        tunnel:
          enabled: false
        state:
          path: "{tmp_path}/state.json"
        """))
    script = textwrap.dedent(f"""\
        set -u
        ip link set lo up
        mount --bind {tmp_path}/resolv.conf /etc/resolv.conf
        mount --bind {tmp_path}/hosts /etc/hosts
        python3 {ROOT}/Tests/Fixtures/dns/responder.py --log {queries} cp.pipeops.test=127.0.0.1 &
        dns=$!
        python3 {ROOT}/Tests/Fixtures/controlplane/server.py --api-port {api_port} --tunnel-port {tunnel_port} \\
            --token {TOKEN} 2>{tmp_path}/cp.log &
        cp=$!
        {agent_binary()} --config {tmp_path}/agent.yaml --log-format json --log-level debug 2>{tmp_path}/agent.log &
        agent=$!
        for i in $(seq 150); do
          grep -q '"registered with the control plane"' {tmp_path}/agent.log && break
          sleep 0.1
        done
        echo "agent threads $(ls /proc/$agent/task | wc -l)"
        kill $agent $cp $dns
        wait $agent; echo "agent exit $?"
        """)
    r = subprocess.run(["unshare", "--net", "--mount", "bash", "-c", script], capture_output=True, text=True, timeout=60)
    agent_log = (tmp_path / "agent.log").read_text() if (tmp_path / "agent.log").exists() else ""
    assert "agent exit 0" in r.stdout, f"{r.stdout}\n{r.stderr}\n{agent_log[-3000:]}"
    asked = queries.read_text().split("\n") if queries.exists() else []
    assert "1 cp.pipeops.test" in asked, f"the agent never asked the DNS server: {asked}\n{agent_log[-3000:]}"
    assert '"registered with the control plane"' in agent_log, agent_log[-3000:]
    assert '"via":"c-ares"' in agent_log, "the name was not resolved through c-ares"
    assert "agent threads 1\n" in r.stdout, f"the agent is not one thread: {r.stdout}"
