#!/usr/bin/env bash
# Tunnel throughput (1 and 16 streams, both ways), 1-byte round trip p50/p99, connections per
# second, CPU seconds per GB of each process and RSS with 1,000 held connections: the agent, an
# optional reference chisel client, and direct loopback, measured in the same run.
#
#   BENCH_TUNNEL=python|swift|URL   the tunnel server: the control-plane double's (default),
#                                   `pipeops-agent tunnel-server`, or one you run (then
#                                   BENCH_TUNNEL_FINGERPRINT, BENCH_TUNNEL_AUTH=user:pass and,
#                                   for its CPU figures, BENCH_TUNNEL_PID)
#   BENCH_REFERENCE_CLIENT=PATH     a chisel-compatible client to compare (skipped when unset)
#   BENCH_SMOKE=1                   one second per measure, nothing recorded (run by make test)
#   BENCH_BACKENDS="epoll io_uring" the agent's loop backends, one column each (default both);
#                                   each column also counts system calls per MB (strace -c)
#   BENCH_SECONDS=N                 seconds per throughput measure (default 4)
#
# The floor is measured in the same run: two bench/relay-floor.c processes in series between the
# same iperf3 ends, where the agent and the tunnel server sit (read, AES-128-GCM, write; nothing
# else): the least CPU per byte and the most throughput an encrypting tunnel can have on this
# machine. The table gives each agent against it and against direct loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
export PIPEOPS_AGENT_BIN=${PIPEOPS_AGENT_BIN:-$BIN/pipeops-agent}
export BENCH_RELAY_FLOOR=${BENCH_RELAY_FLOOR:-$(build_relay_floor)}
python3 bench/tunnel_bench.py
