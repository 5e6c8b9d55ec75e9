#!/usr/bin/env bash
# Reactor benchmark: echo throughput against iperf3 on loopback, per-connection and idle memory.
# Everything runs on 127.0.0.1, side by side in one invocation; prints ratios, appends a table
# to bench/results/reactor.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
[ -x "$BIN/reactor-bench" ] || scripts/build-release.sh --product reactor-bench
SECONDS_PER_RUN=${BENCH_SECONDS:-2}

# The machine (a VM on a shared host) drifts by 20 % or more from one minute to the next, so
# every throughput is measured ROUNDS times, the runs of a round seconds apart, and each ratio
# is the median of the per-round ratios (with its range).
ROUNDS=${BENCH_ROUNDS:-5}
P=$(free_port)
iperf3 -s -p "$P" >/dev/null 2>&1 & pids+=($!)
P1=$(free_port)
coproc SERVER { exec "$BIN/reactor-bench" echo-server "$P1"; }
pids+=($SERVER_PID)
read -r _ <&"${SERVER[0]}"
# The same client against the simplest C echo server (blocking read/write): what any echo
# server reaches on this machine, since the client's two copies per byte bound it too.
cc -O2 -pthread -o "$BIN/echo-baseline" bench/echo-baseline.c
P3=$(free_port)
coproc CECHO { exec "$BIN/echo-baseline" "$P3"; }
pids+=($CECHO_PID)
read -r _ <&"${CECHO[0]}"
P2=$(free_port)
"$BIN/reactor-bench" sink-server "$P2" >/dev/null & pids+=($!)
sleep 0.5
bps() { python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_second"])'; }
: > "$BIN/reactor-rounds.txt"
for round in $(seq "$ROUNDS"); do
  # 1. iperf3, one stream, one direction; 1b. --bidir: both directions at once, the kernel work
  #    of an echo (each byte written and read twice), as a per-direction rate.
  iperf_bps=$(iperf3 -c 127.0.0.1 -p "$P" -t "$SECONDS_PER_RUN" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8)')
  bidir_bps=$(iperf3 -c 127.0.0.1 -p "$P" -t "$SECONDS_PER_RUN" --bidir -J | python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print((e["sum_received"]["bits_per_second"]+e["sum_received_bidir_reverse"]["bits_per_second"])/16)')
  # 2. The reactor: one connection streaming through an echo server (each byte crosses loopback
  #    twice and the server's loop once; we count the bytes that came back); 2a. the C echo.
  echo_bps=$("$BIN/reactor-bench" echo-client "$P1" "$SECONDS_PER_RUN" | bps)
  c_echo_bps=$("$BIN/reactor-bench" echo-client "$P3" "$SECONDS_PER_RUN" | bps)
  # 2b. iperf3's shape through the reactor: one connection, one direction, the server discards.
  send_bps=$("$BIN/reactor-bench" send-client "$P2" "$SECONDS_PER_RUN" | bps)
  echo "$iperf_bps $bidir_bps $echo_bps $c_echo_bps $send_bps" | tee -a "$BIN/reactor-rounds.txt"
done
kill "$CECHO_PID" 2>/dev/null || true

# 3. 10,000 idle connections held against the same server.
before=$(rss_kib "$SERVER_PID")
coproc HOLDER { exec "$BIN/reactor-bench" hold-clients "$P1" 10000; }
pids+=($HOLDER_PID)
read -r ready <&"${HOLDER[0]}"
sleep 0.5
after=$(rss_kib "$SERVER_PID")
kill "$HOLDER_PID" 2>/dev/null || true

# 4. An idle agent process (standalone: no control plane, no tunnel).
agent=$(start_standalone_agent "$(free_port)")
pids+=($agent)
sleep 1
idle_kib=$(rss_kib "$agent")

python3 - "$BIN/reactor-rounds.txt" "$before" "$after" "$idle_kib" "$ready" <<'PY'
import sys, datetime, subprocess, platform, os, statistics
rounds = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
before, after, idle, ready = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
per_conn = (after - before) * 1024 / 10000
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
IPERF, BIDIR, ECHO, CECHO, SEND = range(5)
def med(c): return statistics.median(r[c] for r in rounds)
def ratio(a, b):
    rs = sorted(r[a] / r[b] for r in rounds)
    return f"{statistics.median(rs):.2f} x ({rs[0]:.2f}-{rs[-1]:.2f})"
mb = lambda c: f"{med(c)/1e6:.0f} MB/s"
rows = [
    ("one-way stream, 1 connection (iperf3's shape)", mb(SEND), f"iperf3 {mb(IPERF)}", ratio(SEND, IPERF), ">= 0.8"),
    ("echo, 1 connection (each byte crosses loopback twice)", mb(ECHO), f"iperf3 {mb(IPERF)}", ratio(ECHO, IPERF), ">= 0.8"),
    ("echo, 1 connection, against iperf3 --bidir (same kernel work per byte)", mb(ECHO), f"iperf3 --bidir {mb(BIDIR)} per direction", ratio(ECHO, BIDIR), ""),
    ("blocking C echo server, same client, against iperf3 (what an echo reaches here)", mb(CECHO), f"iperf3 {mb(IPERF)}", ratio(CECHO, IPERF), ""),
    ("echo, 1 connection, against the blocking C echo server", mb(ECHO), f"C echo {mb(CECHO)}", ratio(ECHO, CECHO), ""),
    ("RSS per idle connection (10,000)", f"{per_conn/1024:.2f} KiB", f"{before} KiB -> {after} KiB ({ready})", "", "<= 4 KiB"),
    ("idle agent RSS", f"{idle/1024:.1f} MiB", "", "", "<= 8 MiB"),
]
out = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, {os.cpu_count()} cores, {platform.machine()}, {len(rounds)} rounds\n",
       "| measure | agent (median) | baseline (median) | ratio: median of rounds (range) | target |", "|---|---|---|---|---|"]
out += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(out) + "\n"
print(text)
with open("bench/results/reactor.md", "a") as f:
    f.write(text)
PY
