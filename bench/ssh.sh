#!/usr/bin/env bash
# Reverse-forward throughput through one OpenSSH sshd (aes128-gcm only): the agent's SSH
# tunnel mode against OpenSSH's own `ssh -N -R`, both carrying iperf3 on 127.0.0.1, both
# directions, with client CPU seconds per GiB and peak RSS. Same run, same machine.
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
measure() {   # $1 = client pid, $2 = remote port; prints "up_Bps down_Bps cpu_s_per_GiB sshd_s_per_GiB_up"
  local pid=$1 port=$2 c0 c1 s0 s1 up down sshd
  wait_listen "$port"
  sshd=$(pgrep -n -u sshtest sshd)   # the session process of the newest connection: this client's
  c0=$(cpu_seconds "$pid"); s0=$(cpu_seconds "$sshd")
  up=$(iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -J | python3 bench/iperf_sum.py)
  s1=$(cpu_seconds "$sshd")
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

# This machine's speed drifts by 20 % and more from minute to minute, and in one direction for
# minutes at a time. So each round runs the clients in the order A B B A (the next round B A A B)
# and compares their sums: a steady drift adds as much to one client as to the other. The table
# shows the median of the ROUNDS per-round ratios, with their range.
ROUNDS=${BENCH_ROUNDS:-4}
: > "$adir/agent.txt"; : > "$adir/ssh.txt"
run_agent() {
  "$BIN/pipeops-agent" --config "$adir/agent.yaml" --log-level warning --log-format json >/dev/null 2>>"$adir/agent.log" & agent=$!
  pids+=($agent)
  echo "$(measure "$agent" "$AR") $(hwm_kib "$agent")" >> "$adir/agent.txt"
  kill "$agent"; wait "$agent" 2>/dev/null || true
}
run_openssh() {
  OR=$(free_port)
  ssh -N -R "127.0.0.1:$OR:127.0.0.1:$IP" -p "$SP" -i "$dir/client_ed25519" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o Ciphers=aes128-gcm@openssh.com -o LogLevel=ERROR sshtest@127.0.0.1 & sshc=$!
  pids+=($sshc)
  echo "$(measure "$sshc" "$OR") $(hwm_kib "$sshc")" >> "$adir/ssh.txt"
  kill "$sshc"; wait "$sshc" 2>/dev/null || true
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then run_agent; run_openssh; run_openssh; run_agent
  else run_openssh; run_agent; run_agent; run_openssh; fi
done

python3 - "$adir/agent.txt" "$adir/ssh.txt" "$(machine_line)" <<'PY'
import statistics, sys
agent = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
ssh = [list(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
machine = sys.argv[3]
def med(rows, c): return statistics.median(r[c] for r in rows)
def paired(c):
    # Each round wrote two lines per client (A B B A): compare the round's sums.
    ratios = sorted((agent[i][c] + agent[i + 1][c]) / (ssh[i][c] + ssh[i + 1][c]) for i in range(0, len(agent) - 1, 2))
    return statistics.median(ratios), ratios[0], ratios[-1]
rows = [("into the forward (iperf3)", 0, lambda v: f"{v/1e6:.0f} MB/s", ">= 1.0"),
        ("out of the forward (iperf3 -R)", 1, lambda v: f"{v/1e6:.0f} MB/s", ">= 1.0"),
        ("client CPU per GiB", 2, lambda v: f"{v:.2f} s", "<= 1.0"),
        ("sshd's CPU per GiB into the forward (its limit)", 3, lambda v: f"{v:.2f} s", ""),
        ("client peak RSS", 4, lambda v: f"{v/1024:.1f} MiB", "")]
out = [f"\n## SSH reverse forward (aes128-gcm, through one sshd; {len(agent) // 2} rounds of A B B A / B A A B): {machine}\n",
       "| measure | agent (ssh mode), median of runs | OpenSSH ssh -N -R, median of runs | ratio per round: median (range) | target |",
       "|---|---|---|---|---|"]
for name, c, fmt, target in rows:
    m, lo, hi = paired(c)
    out.append(f"| {name} | {fmt(med(agent, c))} | {fmt(med(ssh, c))} | {m:.2f} x ({lo:.2f}-{hi:.2f}) | {target} |")
text = "\n".join(out) + "\n"
for i, (a, o) in enumerate(zip(agent, ssh)):
    print(f"round {i // 2 + 1}: into {a[0]/1e6:.0f} vs {o[0]/1e6:.0f} MB/s, out {a[1]/1e6:.0f} vs {o[1]/1e6:.0f} MB/s, "
          f"CPU/GiB {a[2]:.2f} vs {o[2]:.2f} s, sshd CPU/GiB into {a[3]:.2f} vs {o[3]:.2f} s")
print(text)
open("bench/results/ssh.md", "a").write(text)
PY
