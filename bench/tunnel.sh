#!/usr/bin/env bash
# Tunnel throughput (1 and 16 streams, both ways), 1-byte latency, connection rate and agent
# memory, through the chisel-v3 test server, against direct loopback in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIPEOPS_AGENT_BIN=${PIPEOPS_AGENT_BIN:-$(swift build -c release --show-bin-path)/pipeops-agent}
python3 bench/tunnel_bench.py
