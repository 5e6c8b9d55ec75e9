#!/usr/bin/env bash
# The agent's HTTP server (/health, keep-alive) against nginx (worker_processes 1,
# return 200 'ok'), both under wrk on 127.0.0.1 in the same run, 1 and 100 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
DURATION=${BENCH_SECONDS:-3}

NP=$(free_port)
pids+=("$(start_nginx "$(mktemp -d)" "server { listen 127.0.0.1:$NP; location / { return 200 'ok'; } }")")
AP=$(free_port)
agent=$(start_standalone_agent "$AP"); pids+=($agent)
wait_port "$NP"; wait_port "$AP"

# The two servers take turns, ROUNDS times; medians are compared.
ROUNDS=${BENCH_ROUNDS:-3}
declare -A R
for c in 1 100; do
  n=""; a=""
  for _ in $(seq "$ROUNDS"); do
    n="$n $(rps "$c" "http://127.0.0.1:$NP/")"
    a="$a $(rps "$c" "http://127.0.0.1:$AP/health")"
  done
  R[nginx_$c]=$(echo "$n" | med)
  R[agent_$c]=$(echo "$a" | med)
done
python3 - "${R[agent_1]}" "${R[nginx_1]}" "${R[agent_100]}" "${R[nginx_100]}" "$(machine_line)" <<'PY'
import sys
a1, n1, a100, n100, machine = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
rows = [("wrk, 1 connection", a1, n1), ("wrk, 100 connections", a100, n100)]
out = [f"\n## HTTP server (medians of alternating rounds): {machine}\n", "| load | agent /health req/s | nginx req/s | ratio | target |", "|---|---|---|---|---|"]
out += [f"| {n} | {a:,.0f} | {b:,.0f} | {a/b:.2f} x nginx | >= 1.0 |" for n, a, b in rows]
text = "\n".join(out) + "\n"
print(text)
open("bench/results/http.md", "a").write(text)
PY
