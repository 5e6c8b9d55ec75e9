#!/usr/bin/env bash
# The Kubernetes client at 10,000 pods, against the test API server (Tests/Fixtures/kubernetes):
# time to the first complete picture and peak RSS of the agent next to `kubectl get pods -A -o name`
# (Go client-go) on the same server; RSS per watched pod after sync (the agent's RSS with 10,000
# pods minus its RSS against a server with none); agent CPU while 100 pod changes per second
# stream in. Indicative on a shared machine: the Python server is the slow side of every number.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
PODS=${PODS:-10000}
CHURN_SECONDS=${CHURN_SECONDS:-20}
work=$(mktemp -d /tmp/pipeops-bench-k8s.XXXXXX)
sh Tests/Fixtures/tls/make-pki.sh "$work/pki" >/dev/null 2>&1

start_server() {  # name pods; its port goes to $work/name.json (not in a subshell: pids must grow here)
  python3 Tests/Fixtures/kubernetes/apiserver.py --cert "$work/pki/server.pem" --key "$work/pki/server.key" \
    --ca "$work/pki/ca.pem" --token bench-token --seed-nodes 10 --seed-pods "$2" \
    --write-kubeconfig "$work/$1.kubeconfig" > "$work/$1.json" 2> "$work/$1.log" &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$work/$1.json" ] && break; sleep 0.1; done
}
server_port() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$work/$1.json"; }

start_agent() {  # name port; sets AGENT_PID; the agent watches the server of that name
  local port=$2
  printf 'pipeops:\n  api_url: ""\nagent:\n  port: %s\ntunnel:\n  enabled: false\nkubernetes:\n  kubeconfig: "%s"\nstate:\n  path: %s/%s-state.json\n' \
    "$port" "$work/$1.kubeconfig" "$work" "$1" > "$work/$1-agent.yaml"
  HOME=$work "$BIN/pipeops-agent" --config "$work/$1-agent.yaml" --log-level warning --log-format json >/dev/null 2>"$work/$1-agent.log" &
  AGENT_PID=$!
  pids+=("$AGENT_PID")
}

wait_synced() {  # agent port, start time (epoch seconds) -> seconds until /ready's kubernetes check is ok
  python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
port, start = sys.argv[1], float(sys.argv[2])
while time.time() - start < 600:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5).read()
    except Exception as e:  # 503 until synced
        body = getattr(e, "read", lambda: b"")()
    try:
        if json.loads(body)["checks"]["kubernetes"]["ok"]:
            print(f"{time.time() - start:.3f}"); sys.exit(0)
    except (ValueError, KeyError):
        pass
    time.sleep(0.02)
sys.exit("the agent never synced")
PY
}

start_server big "$PODS"
start_server empty 0
big=$(server_port big)

# kubectl's picture of the same server (a fresh process: discovery, list in chunks of 500).
/usr/bin/time -v kubectl --kubeconfig "$work/big.kubeconfig" get pods -A -o name > "$work/kubectl.out" 2> "$work/kubectl.time"
kubectl_n=$(wc -l < "$work/kubectl.out")
kubectl_s=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$work/kubectl.time")
kubectl_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/kubectl.time")

aport=$(free_port)
t0=$(date +%s.%N)
start_agent big "$aport"
agent=$AGENT_PID
agent_s=$(wait_synced "$aport" "$t0")
sleep 2
agent_rss=$(rss_kib "$agent"); agent_hwm=$(hwm_kib "$agent")

eport=$(free_port)
start_agent empty "$eport"
eagent=$AGENT_PID
wait_synced "$eport" "$(date +%s.%N)" >/dev/null
sleep 2
empty_rss=$(rss_kib "$eagent")

# 100 pod changes per second for CHURN_SECONDS against the big server.
cpu0=$(cpu_seconds "$agent")
curl -sk --cacert "$work/pki/ca.pem" -X POST -H 'Content-Type: application/json' \
  --data "{\"rate\": 100, \"seconds\": $CHURN_SECONDS}" "https://127.0.0.1:$big/_test/churn" > /dev/null
sleep "$CHURN_SECONDS"
cpu1=$(cpu_seconds "$agent")
agent_hwm=$(hwm_kib "$agent")

per_pod=$(awk -v a="$agent_rss" -v e="$empty_rss" -v n="$PODS" 'BEGIN {printf "%.2f", (a-e)*1024/n/1024}')
cpu_pct=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$CHURN_SECONDS" 'BEGIN {printf "%.1f", (b-a)/s*100}')
ratio=$(awk -v a="$agent_s" -v k="$kubectl_s" 'BEGIN {printf "%.2f", a/k}')
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

out=bench/results/kubernetes.md
{
  echo "# Kubernetes client at $PODS pods"
  echo
  echo "$(machine_line). Test API server: Tests/Fixtures/kubernetes (Python, pages of 500)."
  echo
  echo "| measure | agent | kubectl get pods -A -o name | ratio |"
  echo "|---|---|---|---|"
  echo "| time to the first complete picture | ${agent_s} s (start to /ready synced: nodes, pods, services, events) | ${kubectl_s} s ($kubectl_n pods) | ${ratio}x |"
  echo "| peak RSS | $(mib "$agent_hwm") MiB (through the churn below) | $(mib "$kubectl_kib") MiB | |"
  echo "| RSS after sync | $(mib "$agent_rss") MiB ($(mib "$empty_rss") MiB against a server with no pods) | | |"
  echo "| RSS per watched pod | ${per_pod} KiB (target <= 0.5) | | |"
  echo "| CPU at 100 pod changes/s | ${cpu_pct}% of a core over ${CHURN_SECONDS} s | | |"
} > "$out"
cat "$out"
