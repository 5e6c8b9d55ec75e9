#!/usr/bin/env bash
# Reactor benchmark: echo throughput against iperf3 on loopback, per-connection and idle memory,
# with a backend column: every reactor measure runs on epoll and on io_uring in the same round.
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
BACKENDS=(epoll io_uring)
# Starts `reactor-bench MODE` on a free port and backend $2, waits for its "listening" line;
# sets started_pid and started_port.
start_bench_server() {
  local out="$BIN/reactor-$1-$2.out"
  started_port=$(free_port)
  : > "$out"
  PIPEOPS_REACTOR_BACKEND=$2 "$BIN/reactor-bench" "$1" "$started_port" > "$out" &
  started_pid=$!
  pids+=($started_pid)
  for _ in $(seq 200); do [ -s "$out" ] && return 0; sleep 0.05; done
  echo "reactor-bench $1 on $2 did not start" >&2; return 1
}
declare -A ECHO_PORT ECHO_PID SINK_PORT
for b in "${BACKENDS[@]}"; do
  start_bench_server echo-server "$b"; ECHO_PORT[$b]=$started_port; ECHO_PID[$b]=$started_pid
  start_bench_server sink-server "$b"; SINK_PORT[$b]=$started_port
done
# The same client against the simplest C echo server (blocking read/write): what any echo
# server reaches on this machine, since the client's two copies per byte bound it too.
cc -O2 -pthread -o "$BIN/echo-baseline" bench/echo-baseline.c
P3=$(free_port)
coproc CECHO { exec "$BIN/echo-baseline" "$P3"; }
pids+=($CECHO_PID)
read -r _ <&"${CECHO[0]}"
bps() { python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_second"])'; }
: > "$BIN/reactor-rounds.txt"
for round in $(seq "$ROUNDS"); do
  # 1. iperf3, one stream, one direction; 1b. --bidir: both directions at once, the kernel work
  #    of an echo (each byte written and read twice), as a per-direction rate.
  iperf_bps=$(iperf3 -c 127.0.0.1 -p "$P" -t "$SECONDS_PER_RUN" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8)')
  bidir_bps=$(iperf3 -c 127.0.0.1 -p "$P" -t "$SECONDS_PER_RUN" --bidir -J | python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print((e["sum_received"]["bits_per_second"]+e["sum_received_bidir_reverse"]["bits_per_second"])/16)')
  # 2. The reactor on each backend: one connection streaming through an echo server (each byte
  #    crosses loopback twice and the server's loop once; we count the bytes that came back) and
  #    the echo server's CPU seconds per GB echoed; 2a. the C echo; 2b. iperf3's shape through
  #    the reactor: one connection, one direction, the server discards.
  line="$iperf_bps $bidir_bps"
  for b in "${BACKENDS[@]}"; do
    cpu0=$(cpu_seconds "${ECHO_PID[$b]}")
    echo_bps=$("$BIN/reactor-bench" echo-client "${ECHO_PORT[$b]}" "$SECONDS_PER_RUN" | bps)
    cpu1=$(cpu_seconds "${ECHO_PID[$b]}")
    send_bps=$("$BIN/reactor-bench" send-client "${SINK_PORT[$b]}" "$SECONDS_PER_RUN" | bps)
    cpu_per_gb=$(python3 -c "print(($cpu1 - $cpu0) / ($echo_bps * $SECONDS_PER_RUN / 1e9))")
    line="$line $echo_bps $send_bps $cpu_per_gb"
  done
  c_echo_bps=$("$BIN/reactor-bench" echo-client "$P3" "$SECONDS_PER_RUN" | bps)
  echo "$line $c_echo_bps" | tee -a "$BIN/reactor-rounds.txt"
done
kill "$CECHO_PID" 2>/dev/null || true

# 3. 10,000 idle connections held against each backend's echo server (the holder on epoll).
idle_line=""
for b in "${BACKENDS[@]}"; do
  before=$(rss_kib "${ECHO_PID[$b]}")
  coproc HOLDER { exec "$BIN/reactor-bench" hold-clients "${ECHO_PORT[$b]}" 10000; }
  holder=$HOLDER_PID
  pids+=($holder)
  read -r _ ready <&"${HOLDER[0]}"
  sleep 0.5
  after=$(rss_kib "${ECHO_PID[$b]}")
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  idle_line="$idle_line $before $after $ready"
done

# 4. An idle agent process (standalone: no control plane, no tunnel).
agent=$(start_standalone_agent "$(free_port)")
pids+=($agent)
sleep 1
idle_kib=$(rss_kib "$agent")

python3 - "$BIN/reactor-rounds.txt" "$idle_kib" $idle_line <<'PY'
import sys, datetime, subprocess, platform, os, statistics
rounds = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
idle = int(sys.argv[2])
held = sys.argv[3:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
BACKENDS = ["epoll", "io_uring"]
IPERF, BIDIR = 0, 1
def col(backend, what): return 2 + 3 * BACKENDS.index(backend) + ["echo", "send", "cpu"].index(what)
CECHO = 2 + 3 * len(BACKENDS)
def med(c): return statistics.median(r[c] for r in rounds)
def ratio(a, b):
    rs = sorted(r[a] / r[b] for r in rounds)
    return f"{statistics.median(rs):.2f} x ({rs[0]:.2f}-{rs[-1]:.2f})"
mb = lambda c: f"{med(c)/1e6:.0f} MB/s"
rows = []
for i, b in enumerate(BACKENDS):
    before, after, ready = int(held[3 * i]), int(held[3 * i + 1]), held[3 * i + 2]
    per_conn = (after - before) * 1024 / 10000
    rows += [
        ("one-way stream, 1 connection (iperf3's shape)", b, mb(col(b, "send")), f"iperf3 {mb(IPERF)}", ratio(col(b, "send"), IPERF), ">= 0.8"),
        ("echo, 1 connection (each byte crosses loopback twice)", b, mb(col(b, "echo")), f"iperf3 {mb(IPERF)}", ratio(col(b, "echo"), IPERF), ">= 0.8"),
        ("echo, 1 connection, against iperf3 --bidir (same kernel work per byte)", b, mb(col(b, "echo")), f"iperf3 --bidir {mb(BIDIR)} per direction", ratio(col(b, "echo"), BIDIR), ""),
        ("echo, 1 connection, against the blocking C echo server", b, mb(col(b, "echo")), f"C echo {mb(CECHO)}", ratio(col(b, "echo"), CECHO), ""),
        ("echo server CPU per GB echoed", b, f"{med(col(b, 'cpu')):.2f} s/GB", "", "", ""),
        ("RSS per idle connection (10,000)", b, f"{per_conn/1024:.2f} KiB", f"{before} KiB -> {after} KiB ({ready} open)", "", "<= 4 KiB"),
    ]
rows += [
    ("echo throughput, io_uring against epoll", "both", mb(col("io_uring", "echo")), f"epoll {mb(col('epoll', 'echo'))}", ratio(col("io_uring", "echo"), col("epoll", "echo")), "> 1: auto = io_uring"),
    ("one-way stream, io_uring against epoll", "both", mb(col("io_uring", "send")), f"epoll {mb(col('epoll', 'send'))}", ratio(col("io_uring", "send"), col("epoll", "send")), ""),
    ("echo CPU per GB, io_uring against epoll", "both", f"{med(col('io_uring', 'cpu')):.2f} s/GB", f"epoll {med(col('epoll', 'cpu')):.2f} s/GB", ratio(col("io_uring", "cpu"), col("epoll", "cpu")), "< 1"),
    ("blocking C echo server, same client, against iperf3 (what an echo reaches here)", "-", mb(CECHO), f"iperf3 {mb(IPERF)}", ratio(CECHO, IPERF), ""),
    ("idle agent RSS", "auto", f"{idle/1024:.1f} MiB", "", "", "<= 8 MiB"),
]
out = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, {os.cpu_count()} cores, {platform.machine()}, {len(rounds)} rounds\n",
       "| measure | backend | agent (median) | baseline (median) | ratio: median of rounds (range) | target |", "|---|---|---|---|---|---|"]
out += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(out) + "\n"
print(text)
with open("bench/results/reactor.md", "a") as f:
    f.write(text)
PY
