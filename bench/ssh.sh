#!/usr/bin/env bash
# Reverse-forward throughput through one OpenSSH sshd (aes128-gcm only): the agent's SSH
# tunnel mode, one column per loop backend, against OpenSSH's own `ssh -N -R`, all carrying
# iperf3 on 127.0.0.1, both directions, with client CPU seconds per GiB, system calls per MB
# (strace -c) and peak RSS. Same run, same machine. The CPU floor (bench/relay-floor.c: read,
# AES-128-GCM, write between the same iperf3 ends) is measured in the run too.
#
#   BENCH_BACKENDS="epoll io_uring"   the agent's loop backends (default both)
#   BENCH_ROUNDS=N                    rounds of paired runs (default 4)
#   BENCH_SECONDS=N                   seconds per iperf3 run (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
DURATION=${BENCH_SECONDS:-3}
dir=$(mktemp -d)
chmod 755 "$dir"   # sshd reads authorized_keys as the test user
sh Tests/Fixtures/ssh/make-test-user.sh sshtest sshtest-password
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_ed25519"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
chmod 644 "$dir/authorized_keys"
SP=$(free_port)
mkdir -p /run/sshd
sed -e "s|@PORT@|$SP|" -e "s|@PIDFILE@|$dir/sshd.pid|" -e "s|@AUTHKEYS@|$dir/authorized_keys|" \
  Tests/Fixtures/ssh/sshd_config.template > "$dir/sshd_config"
printf 'HostKey %s\nCiphers aes128-gcm@openssh.com\n' "$dir/host_ed25519" >> "$dir/sshd_config"
/usr/sbin/sshd -D -e -f "$dir/sshd_config" -E "$dir/sshd.log" & pids+=($!)
IP=$(free_port)
iperf3 -s -p "$IP" >/dev/null 2>&1 & pids+=($!)
wait_port "$SP"; wait_port "$IP"

# One client at a time: measure iperf3 through its forward, both directions.
# Also the CPU that sshd's process for this client spends per GiB into the forward: sshd is
# what limits that direction here, and how much it spends per byte depends on the client.
measure() {   # $1 = client pid, $2 = remote port, $3 = "no-sshd" for the floor (no sshd on its path)
  # prints "up_Bps down_Bps cpu_s_per_GiB sshd_s_per_GiB_up"
  local pid=$1 port=$2 c0 c1 s0=0 s1=0 up down sshd=""
  wait_listen "$port"
  # The session process of the newest connection: this client's.
  [ "${3:-}" = no-sshd ] || sshd=$(pgrep -n -u sshtest sshd)
  c0=$(cpu_seconds "$pid"); [ -z "$sshd" ] || s0=$(cpu_seconds "$sshd")
  up=$(iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -J | python3 bench/iperf_sum.py)
  [ -z "$sshd" ] || s1=$(cpu_seconds "$sshd")
  down=$(iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -R -J | python3 bench/iperf_sum.py)
  c1=$(cpu_seconds "$pid")
  python3 -c "import sys; u,ub,d,db,c,s=map(float,sys.argv[1:]); print(u, d, c/((ub+db)/2**30), s/(ub/2**30))" \
    $up $down "$(python3 -c "print($c1-$c0)")" "$(python3 -c "print($s1-$s0)")"
}

# The agent's config: SSH mode with the same key, one forward to iperf3.
AR=$(free_port)
adir=$(mktemp -d)
cat > "$adir/agent.yaml" <<YAML
pipeops:
  api_url: ""
agent:
  port: $(free_port)
tunnel:
  mode: ssh
  ssh:
    server: "127.0.0.1:$SP"
    user: "sshtest"
    identity_file: "$dir/client_ed25519"
  forwards:
    - name: "iperf"
      local_addr: "127.0.0.1:$IP"
      remote_port: $AR
state:
  path: "$adir/state.json"
YAML

# System calls the client makes per MB moved into the forward ($1 = pid, $2 = port): strace -c
# over one iperf3 run. io_uring's I/O does not show as read/write calls, only as io_uring_enter.
syscalls_per_mb() {
  local out; out=$(mktemp)
  strace -c -f -o "$out" -p "$1" & local tracer=$!
  sleep 0.5
  local bytes; bytes=$(iperf3 -c 127.0.0.1 -p "$2" -t "$DURATION" -J | python3 bench/iperf_sum.py | cut -d' ' -f2)
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  awk -v b="$bytes" '$NF == "total" {printf "%.1f\n", $4 / (b / 1e6)}' "$out"
  rm -f "$out"
}

# This machine's speed drifts by 20 % and more from minute to minute, and in one direction for
# minutes at a time. So each round runs the clients in one order and then in the reverse order
# (A B C C B A; the next round starts from another client) and compares each agent's sum with
# OpenSSH's: a steady drift adds as much to one client as to another. The table shows the
# median of the ROUNDS per-round ratios, with their range. Each client's last run is also
# traced for its system calls per MB.
ROUNDS=${BENCH_ROUNDS:-4}
BACKENDS=${BENCH_BACKENDS:-epoll io_uring}
clients=()
for b in $BACKENDS; do clients+=("agent-$b"); : > "$adir/agent-$b.txt"; done
clients+=(openssh); : > "$adir/openssh.txt"
run_client() {   # $1 = agent-<backend> | openssh; $2 = "trace" to count system calls instead
  local name=$1 pid port
  if [ "$name" = openssh ]; then
    port=$(free_port)
    ssh -N -R "127.0.0.1:$port:127.0.0.1:$IP" -p "$SP" -i "$dir/client_ed25519" -o StrictHostKeyChecking=no \
      -o UserKnownHostsFile=/dev/null -o Ciphers=aes128-gcm@openssh.com -o LogLevel=ERROR sshtest@127.0.0.1 & pid=$!
  else
    port=$AR
    PIPEOPS_REACTOR_BACKEND=${name#agent-} "$BIN/pipeops-agent" --config "$adir/agent.yaml" --log-level warning \
      --log-format json >/dev/null 2>>"$adir/agent.log" & pid=$!
  fi
  pids+=($pid)
  if [ "${2:-}" = trace ]; then
    wait_listen "$port"
    echo "$(syscalls_per_mb "$pid" "$port")" > "$adir/$name.syscalls"
  else
    echo "$(measure "$pid" "$port") $(hwm_kib "$pid")" >> "$adir/$name.txt"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for round in $(seq "$ROUNDS"); do
  # Rotate the starting client each round, then run the order and its reverse.
  shift_by=$(( (round - 1) % ${#clients[@]} ))
  order=("${clients[@]:$shift_by}" "${clients[@]:0:$shift_by}")
  for c in "${order[@]}"; do run_client "$c"; done
  for (( i=${#order[@]}-1; i>=0; i-- )); do run_client "${order[$i]}"; done
done
for c in "${clients[@]}"; do run_client "$c" trace; done

# The floor: bench/relay-floor.c between the same iperf3 ends, measured like a client.
FP=$(free_port)
"$(build_relay_floor)" "$FP" "$IP" & floor=$!
pids+=($floor)
measure "$floor" "$FP" no-sshd > "$adir/floor.txt"
kill "$floor"; wait "$floor" 2>/dev/null || true

python3 - "$adir" "$(machine_line)" "${clients[@]}" <<'PY'
import os, statistics, sys
adir, machine, clients = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {c: [list(map(float, l.split())) for l in open(f"{adir}/{c}.txt") if l.strip()] for c in clients}
syscalls = {c: open(f"{adir}/{c}.syscalls").read().strip() for c in clients if os.path.exists(f"{adir}/{c}.syscalls")}
floor = list(map(float, open(f"{adir}/floor.txt").read().split()))
agents = [c for c in clients if c.startswith("agent-")]
def med(c, col): return statistics.median(r[col] for r in runs[c])
def paired(c, col):
    # Each round wrote two lines per client: compare the round's sums with OpenSSH's.
    a, o = runs[c], runs["openssh"]
    ratios = sorted((a[i][col] + a[i + 1][col]) / (o[i][col] + o[i + 1][col]) for i in range(0, len(a) - 1, 2))
    return f"{statistics.median(ratios):.2f} x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
rows = [("into the forward (iperf3)", 0, lambda v: f"{v/1e6:.0f} MB/s", ">= 1.0"),
        ("out of the forward (iperf3 -R)", 1, lambda v: f"{v/1e6:.0f} MB/s", ">= 1.0"),
        ("client CPU per GiB", 2, lambda v: f"{v:.2f} s", "<= 1.0"),
        ("sshd's CPU per GiB into the forward (its limit)", 3, lambda v: f"{v:.2f} s", ""),
        ("client peak RSS", 4, lambda v: f"{v/1024:.1f} MiB", "")]
label = {c: f"agent (ssh mode, {c[6:]})" for c in agents} | {"openssh": "OpenSSH ssh -N -R"}
out = [f"\n## SSH reverse forward (aes128-gcm, through one sshd; {len(runs['openssh']) // 2} rounds, each client twice in mirrored order): {machine}\n",
       "| measure | " + " | ".join(f"{label[c]}, median of runs" for c in clients) + " | " +
       " | ".join(f"{label[c]} / OpenSSH per round: median (range)" for c in agents) + " | target |",
       "|---|" + "---|" * (len(clients) + len(agents) + 1)]
for name, col, fmt, target in rows:
    out.append(f"| {name} | " + " | ".join(fmt(med(c, col)) for c in clients) + " | " +
               " | ".join(paired(c, col) for c in agents) + f" | {target} |")
out.append("| system calls per MB into the forward (strace -c, one run) | " + " | ".join(syscalls.get(c, "") for c in clients) +
           " | " + " | ".join("" for _ in agents) + " |  |")
out.append("| client CPU per GiB against the floor (relay-floor: read, AES-128-GCM, write; "
           f"{floor[2]:.2f} s per GiB at {floor[0]/1e6:.0f} / {floor[1]/1e6:.0f} MB/s in this run) | " +
           " | ".join(f"{med(c, 2) / floor[2]:.2f} x" for c in clients) + " | " + " | ".join("" for _ in agents) + " |  |")
text = "\n".join(out) + "\n"
for c in clients:
    for i, r in enumerate(runs[c]):
        print(f"{label[c]} run {i + 1}: into {r[0]/1e6:.0f} MB/s, out {r[1]/1e6:.0f} MB/s, CPU/GiB {r[2]:.2f} s, sshd CPU/GiB into {r[3]:.2f} s")
print(text)
open("bench/results/ssh.md", "a").write(text)
PY
