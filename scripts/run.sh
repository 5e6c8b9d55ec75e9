#!/usr/bin/env bash
# `make run`: the agent against a local control plane (the test double in
# Tests/Fixtures/controlplane) that hands out our own chisel-v3 tunnel server
# (`pipeops-agent tunnel-server`), all on 127.0.0.1.
# Also starts a Kubernetes API test server (Tests/Fixtures/kubernetes) that the agent watches.
# Prints the dashboard's address (with the token: the agent API token defaults to the cluster
# token), the tunnel's remote port for the agent's HTTP server and a curl that goes through it,
# and a kubectl that reaches the test API server through the kubernetes-api forward.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
AGENT_PORT=${AGENT_PORT:-8080}
TOKEN=run-token
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

"$BIN/pipeops-agent" tunnel-server --host 127.0.0.1 --port 0 --key pipeops-run --reverse \
  --auth pipeops:run-secret 2> "$work/tunnel-server.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "Listening on" "$work/tunnel-server.log" 2>/dev/null && break; sleep 0.1; done
TUNNEL_URL=$(grep -o 'Listening on http://[0-9.:]*' "$work/tunnel-server.log" | sed 's/Listening on //')
FINGERPRINT=$(grep -o 'Fingerprint [A-Za-z0-9+/=]*' "$work/tunnel-server.log" | cut -d' ' -f2)
[ -n "$TUNNEL_URL" ] || { echo "the tunnel server did not start; see $work/tunnel-server.log" >&2; exit 1; }
echo "tunnel server (pipeops-agent tunnel-server): $TUNNEL_URL   fingerprint $FINGERPRINT"

python3 Tests/Fixtures/controlplane/server.py --api-port 0 --tunnel-port 0 --key-seed pipeops-run \
  --tunnel-user pipeops --tunnel-password run-secret --token "$TOKEN" \
  --external-tunnel-url "$TUNNEL_URL" --external-tunnel-fingerprint "$FINGERPRINT" \
  --initial-status REQUIRED --forward "agent-http=$HTTP_REMOTE" --forward "kubernetes-api=$K8S_REMOTE" \
  > "$work/controlplane.json" 2> "$work/controlplane.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/controlplane.json" ] && break; sleep 0.1; done
API_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_url"])' "$work/controlplane.json")
echo "control plane (test double): $API_URL   log: $work/controlplane.log"

# A Kubernetes API test server (Tests/Fixtures/kubernetes) with a few nodes and pods, its own
# test CA and a kubeconfig in $work: the agent watches it, and kubectl reaches it through the tunnel.
sh Tests/Fixtures/tls/make-pki.sh "$work/pki" >/dev/null 2>&1
python3 Tests/Fixtures/kubernetes/apiserver.py --cert "$work/pki/server.pem" --key "$work/pki/server.key" \
  --ca "$work/pki/ca.pem" --token run-k8s-token --seed-nodes 3 --seed-pods 12 \
  --write-kubeconfig "$work/kubeconfig" > "$work/apiserver.json" 2> "$work/apiserver.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/apiserver.json" ] && break; sleep 0.1; done
K8S_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$work/apiserver.json")
echo "Kubernetes API (test server): https://127.0.0.1:$K8S_PORT   kubeconfig: $work/kubeconfig"

cat > "$work/agent.yaml" <<YAML
agent:
  cluster_name: "local-run"
  port: $AGENT_PORT
pipeops:
  api_url: "$API_URL"
  token: "$TOKEN"
tunnel:
  poll_interval: 2s
  forwards:
    - name: "kubernetes-api"
      local_addr: "127.0.0.1:$K8S_PORT"
    - name: "agent-http"
      local_addr: "127.0.0.1:$AGENT_PORT"
kubernetes:
  kubeconfig: "$work/kubeconfig"
state:
  path: "$work/state.json"
YAML

"$BIN/pipeops-agent" --config "$work/agent.yaml" --log-format console "$@" 2> >(tee "$work/agent.log" >&2) &
agent_pid=$!
pids+=($agent_pid)

for _ in $(seq 300); do
  grep -q "tunnel connected" "$work/agent.log" 2>/dev/null && break
  sleep 0.1
done
if grep -q "tunnel connected" "$work/agent.log"; then
  echo
  echo "  tunnel is up: the agent's HTTP server is reachable through remote port $HTTP_REMOTE"
  echo "    curl http://127.0.0.1:$HTTP_REMOTE/health"
  echo "    curl http://127.0.0.1:$HTTP_REMOTE/ready"
  echo "  the kubernetes-api forward: remote port $K8S_REMOTE -> the test API server (127.0.0.1:$K8S_PORT)"
  echo "    kubectl --server https://127.0.0.1:$K8S_REMOTE --certificate-authority $work/pki/ca.pem \\"
  echo "      --tls-server-name localhost --token run-k8s-token get nodes,pods -A"
else
  echo "the tunnel did not come up within 30 s; see $work/agent.log" >&2
fi
echo
echo "  dashboard (live tunnel, forwards, events, charts, the cluster): open in a browser"
echo "    http://127.0.0.1:$AGENT_PORT/dashboard?token=$TOKEN"
echo
wait "$agent_pid"
