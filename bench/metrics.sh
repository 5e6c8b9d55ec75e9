#!/usr/bin/env bash
# The agent's /metrics (rendered per request: /proc reads, tunnel counters, request counters)
# against nginx (worker_processes 1) serving a static file of the same bytes, both under wrk on
# 127.0.0.1 in the same run, 1 and 10 connections. The agent runs with an idle chisel tunnel
# (no control plane: no traffic), so the per-forward families are in the body.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
DURATION=${BENCH_SECONDS:-3}

AP=$(free_port); adir=$(mktemp -d)
# server.rate_limit 0: the per-address limit (default 50/s) would answer wrk with 429s.
printf 'pipeops:\n  api_url: ""\nagent:\n  port: %s\nserver:\n  rate_limit: 0\ntunnel:\n  enabled: true\nstate:\n  path: %s/state.json\n' "$AP" "$adir" > "$adir/agent.yaml"
"$BIN/pipeops-agent" --config "$adir/agent.yaml" --log-level warning --log-format json >/dev/null 2>"$adir/agent.log" &
agent=$!; pids+=($agent)
wait_port "$AP"

# The static copy: the agent's own /metrics body, so both answer the same number of bytes.
NP=$(free_port); ndir=$(mktemp -d)
curl -sf "http://127.0.0.1:$AP/metrics" > "$ndir/metrics"
BYTES=$(stat -c %s "$ndir/metrics")
chmod 755 "$ndir"; chmod 644 "$ndir/metrics"   # nginx's workers read it as an unprivileged user
pids+=("$(start_nginx "$ndir" "server { listen 127.0.0.1:$NP; root $ndir; location = /metrics { } }")")
wait_port "$NP"
[ "$(curl -sf "http://127.0.0.1:$NP/metrics" | wc -c)" = "$BYTES" ] || { echo "nginx does not serve the copy" >&2; exit 1; }

# The two servers take turns, ROUNDS times; medians are compared.
ROUNDS=${BENCH_ROUNDS:-3}
declare -A R
for c in 1 10; do
  n=""; a=""
  for _ in $(seq "$ROUNDS"); do
    n="$n $(rps "$c" "http://127.0.0.1:$NP/metrics")"
    a="$a $(rps "$c" "http://127.0.0.1:$AP/metrics")"
  done
  R[nginx_$c]=$(echo "$n" | med)
  R[agent_$c]=$(echo "$a" | med)
done
python3 - "${R[agent_1]}" "${R[nginx_1]}" "${R[agent_10]}" "${R[nginx_10]}" "$BYTES" "$(machine_line)" <<'PY'
import sys
a1, n1, a10, n10 = map(float, sys.argv[1:5])
size, machine = int(sys.argv[5]), sys.argv[6]
rows = [("wrk, 1 connection", a1, n1), ("wrk, 10 connections", a10, n10)]
out = [f"\n## /metrics ({size:,} bytes; medians of alternating rounds): {machine}\n",
       "| load | agent /metrics req/s | nginx static file req/s | ratio |", "|---|---|---|---|"]
out += [f"| {n} | {a:,.0f} | {b:,.0f} | {a/b:.2f} x nginx |" for n, a, b in rows]
text = "\n".join(out) + "\n"
print(text)
open("bench/results/metrics.md", "a").write(text)
PY
