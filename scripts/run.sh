#!/usr/bin/env bash
# `make run`: the agent against a local control plane (the test double in
# Tests/Fixtures/controlplane, which also runs a chisel-v3 tunnel server), all on 127.0.0.1.
# Prints the tunnel's remote port for the agent's HTTP server and a curl that goes through it.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
AGENT_PORT=${AGENT_PORT:-8080}
work=$(mktemp -d /tmp/pipeops-run.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_REMOTE=$(free_port)
K8S_REMOTE=$(free_port)

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs in $work"
}
trap cleanup INT TERM EXIT

python3 Tests/Fixtures/controlplane/server.py --api-port 0 --tunnel-port 0 --key-seed pipeops-run \
  --tunnel-user pipeops --tunnel-password run-secret --token run-token \
  --initial-status REQUIRED --forward "agent-http=$HTTP_REMOTE" --forward "kubernetes-api=$K8S_REMOTE" \
  > "$work/controlplane.json" 2> "$work/controlplane.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/controlplane.json" ] && break; sleep 0.1; done
API_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_url"])' "$work/controlplane.json")
echo "control plane (test double): $API_URL   log: $work/controlplane.log"

cat > "$work/agent.yaml" <<YAML
agent:
  cluster_name: "local-run"
  port: $AGENT_PORT
pipeops:
  api_url: "$API_URL"
  token: "run-token"
tunnel:
  poll_interval: 2s
  forwards:
    - name: "kubernetes-api"
      local_addr: "127.0.0.1:6443"
    - name: "agent-http"
      local_addr: "127.0.0.1:$AGENT_PORT"
state:
  path: "$work/state.json"
YAML

"$BIN/pipeops-agent" --config "$work/agent.yaml" --log-format console "$@" 2> >(tee "$work/agent.log" >&2) &
pids+=($!)

for _ in $(seq 300); do
  grep -q "tunnel connected" "$work/agent.log" 2>/dev/null && break
  sleep 0.1
done
if grep -q "tunnel connected" "$work/agent.log"; then
  echo
  echo "  tunnel is up: the agent's HTTP server is reachable through remote port $HTTP_REMOTE"
  echo "    curl http://127.0.0.1:$HTTP_REMOTE/health"
  echo "    curl http://127.0.0.1:$HTTP_REMOTE/ready"
  echo "  (the kubernetes-api forward is on remote port $K8S_REMOTE -> 127.0.0.1:6443)"
  echo
else
  echo "the tunnel did not come up within 30 s; see $work/agent.log" >&2
fi
wait "${pids[1]}"
