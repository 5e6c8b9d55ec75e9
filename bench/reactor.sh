#!/usr/bin/env bash
# Reactor benchmark: echo throughput against iperf3 on loopback, per-connection and idle memory.
# Everything runs on 127.0.0.1, side by side in one invocation; prints ratios, appends a table
# to bench/results/reactor.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
[ -x "$BIN/reactor-bench" ] || scripts/build-release.sh --product reactor-bench
SECONDS_PER_RUN=${BENCH_SECONDS:-4}

# 1. iperf3, one stream, one direction.
P=$(free_port)
iperf3 -s -p "$P" >/dev/null 2>&1 & pids+=($!)
sleep 0.5
iperf_bps=$(iperf3 -c 127.0.0.1 -p "$P" -t "$SECONDS_PER_RUN" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8)')
# 1b. iperf3 --bidir: both directions at once, the kernel work of an echo (each byte written
#     and read twice); its per-direction rate is what an echo can reach on the same cores.
iperf_bidir_bps=$(iperf3 -c 127.0.0.1 -p "$P" -t "$SECONDS_PER_RUN" --bidir -J | python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print((e["sum_received"]["bits_per_second"]+e["sum_received_bidir_reverse"]["bits_per_second"])/16)')

# 2. The reactor: one connection streaming through an echo server (each byte crosses loopback
#    twice and the server's loop once; we count the bytes that came back).
P=$(free_port)
coproc SERVER { exec "$BIN/reactor-bench" echo-server "$P"; }
pids+=($SERVER_PID)
read -r _ <&"${SERVER[0]}"
echo_bps=$("$BIN/reactor-bench" echo-client "$P" "$SECONDS_PER_RUN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_second"])')

# 2a. The same client against the simplest C echo server (blocking read/write): the ceiling any
#     echo server reaches on this machine, since the client's two copies per byte bound it too.
cc -O2 -pthread -o "$BIN/echo-baseline" bench/echo-baseline.c
P3=$(free_port)
coproc CECHO { exec "$BIN/echo-baseline" "$P3"; }
pids+=($CECHO_PID)
read -r _ <&"${CECHO[0]}"
c_echo_bps=$("$BIN/reactor-bench" echo-client "$P3" "$SECONDS_PER_RUN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_second"])')
kill "$CECHO_PID" 2>/dev/null || true

# 2b. The same shape as iperf3: one connection, one direction, the server reads and discards.
P2=$(free_port)
"$BIN/reactor-bench" sink-server "$P2" >/dev/null & pids+=($!)
sleep 0.3
send_bps=$("$BIN/reactor-bench" send-client "$P2" "$SECONDS_PER_RUN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_second"])')

# 3. 10,000 idle connections held against the same server.
before=$(rss_kib "$SERVER_PID")
coproc HOLDER { exec "$BIN/reactor-bench" hold-clients "$P" 10000; }
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

python3 - "$iperf_bps" "$echo_bps" "$before" "$after" "$idle_kib" "$ready" "$send_bps" "$iperf_bidir_bps" "$c_echo_bps" <<'PY'
import sys, datetime, subprocess, platform, os
iperf, echo, before, after, idle, ready, send = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], float(sys.argv[7])
bidir, c_echo = float(sys.argv[8]), float(sys.argv[9])
per_conn = (after - before) * 1024 / 10000
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = [
    ("one-way stream, 1 connection (iperf3's shape)", f"{send/1e6:.0f} MB/s", f"iperf3 {iperf/1e6:.0f} MB/s", f"{send/iperf:.2f} x iperf3", ">= 0.8"),
    ("echo, 1 connection (each byte crosses loopback twice)", f"{echo/1e6:.0f} MB/s", f"iperf3 {iperf/1e6:.0f} MB/s", f"{echo/iperf:.2f} x iperf3", ">= 0.8"),
    ("echo, 1 connection, against iperf3 --bidir (same kernel work per byte)", f"{echo/1e6:.0f} MB/s", f"iperf3 --bidir {bidir/1e6:.0f} MB/s per direction", f"{echo/bidir:.2f} x", ""),
    ("echo, 1 connection, against a blocking C echo server (same client)", f"{echo/1e6:.0f} MB/s", f"C echo {c_echo/1e6:.0f} MB/s ({c_echo/iperf:.2f} x iperf3)", f"{echo/c_echo:.2f} x", ""),
    ("RSS per idle connection (10,000)", f"{per_conn/1024:.2f} KiB", f"{before} KiB -> {after} KiB ({ready})", "", "<= 4 KiB"),
    ("idle agent RSS", f"{idle/1024:.1f} MiB", "", "", "<= 8 MiB"),
]
out = [f"\n## {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, {os.cpu_count()} cores, {platform.machine()}\n",
       "| measure | agent | baseline | ratio | target |", "|---|---|---|---|---|"]
out += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(out) + "\n"
print(text)
with open("bench/results/reactor.md", "a") as f:
    f.write(text)
PY
