#!/usr/bin/env bash
# The /ws hub's pushes: 100 WebSocket clients subscribed to `events` while tunnelled connections
# through a forward make events at paced rates, against a reference broadcast server written
# with Python websockets, in the same run (bench/realtime_bench.py says what is measured).
# BENCH_SMOKE=1: one second at one rate with 20 clients, nothing appended to the results.
# BENCH_TUNNEL=swift (default) or python: which chisel server carries the tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
export PIPEOPS_AGENT_BIN=${PIPEOPS_AGENT_BIN:-$BIN/pipeops-agent}
python3 bench/realtime_bench.py "$(machine_line)"
