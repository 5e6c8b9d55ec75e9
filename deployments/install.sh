#!/usr/bin/env bash
# Installs the PipeOps agent as a systemd service on a VM (beside k3s, or any Kubernetes node):
#   sudo PIPEOPS_TOKEN=... deployments/install.sh
# It puts
#   /usr/local/bin/pipeops-agent                    the static agent (BINARY=..., default: the release build)
#   /etc/systemd/system/pipeops-agent.service       the hardened unit (deployments/systemd/)
#   /usr/lib/sysusers.d/pipeops-agent.conf          the agent's system user, `pipeops`
#   /etc/pipeops/agent.env                          PIPEOPS_TOKEN (and PIPEOPS_API_URL, PIPEOPS_CLUSTER_NAME
#                                                   when set), root only; rewritten when PIPEOPS_TOKEN is given
#   /etc/pipeops/agent.yaml                         the config file; written only when missing, so edits stay
# then creates the user, and enables and (re)starts the service.
#
# Running it again gives the same files (and restarts the agent on the new binary). With
# DESTDIR=/some/root it only writes the files under that root, for packaging: no user, no
# systemctl (a package runs systemd-sysusers and enables the unit in its own scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${DESTDIR:-}
binary=${BINARY:-}
if [ -z "$binary" ]; then
  binary=$(cd "$here/.." && swift build -c release --show-bin-path 2>/dev/null)/pipeops-agent || true
fi
[ -x "$binary" ] || { echo "install: no agent binary at '$binary' (scripts/build-release.sh, or BINARY=...)" >&2; exit 1; }
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install: run as root (or set DESTDIR to install into a directory)" >&2; exit 1
fi

env_file="$root/etc/pipeops/agent.env"
config_file="$root/etc/pipeops/agent.yaml"
if [ -z "${PIPEOPS_TOKEN:-}" ] && [ ! -s "$env_file" ]; then
  echo "install: PIPEOPS_TOKEN is required (the cluster's token from the PipeOps console)" >&2; exit 1
fi
# systemd reads the file with shell-like quoting: single quotes keep everything but a quote.
for name in PIPEOPS_TOKEN PIPEOPS_API_URL PIPEOPS_CLUSTER_NAME; do
  case "${!name:-}" in *"'"*|*$'\n'*) echo "install: $name must not contain a quote or a newline" >&2; exit 1;; esac
done

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/sysusers.d"
install -d -m 0755 "$root/etc/pipeops"
install -m 0755 "$binary" "$root/usr/local/bin/pipeops-agent"
install -m 0644 "$here/systemd/pipeops-agent.service" "$root/etc/systemd/system/pipeops-agent.service"
install -m 0644 "$here/systemd/pipeops-agent.sysusers" "$root/usr/lib/sysusers.d/pipeops-agent.conf"

if [ -n "${PIPEOPS_TOKEN:-}" ]; then
  tmp=$(mktemp "$root/etc/pipeops/.agent.env.XXXXXX")
  {
    echo "# Written by deployments/install.sh; read by systemd for pipeops-agent.service."
    echo "PIPEOPS_TOKEN='$PIPEOPS_TOKEN'"
    [ -z "${PIPEOPS_API_URL:-}" ] || echo "PIPEOPS_API_URL='$PIPEOPS_API_URL'"
    [ -z "${PIPEOPS_CLUSTER_NAME:-}" ] || echo "PIPEOPS_CLUSTER_NAME='$PIPEOPS_CLUSTER_NAME'"
  } > "$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$env_file"
fi

if [ ! -e "$config_file" ]; then
  tmp=$(mktemp "$root/etc/pipeops/.agent.yaml.XXXXXX")
  cat > "$tmp" <<'EOF'
# The PipeOps agent's configuration (format: the README's "Configuration"). The token is in
# /etc/pipeops/agent.env. deployments/install.sh wrote this once and leaves it alone since.
agent:
  port: 8080
state:
  path: "/var/lib/pipeops/state.json"
# On a VM the forwards default to the API server at localhost:6443, the kubelet at
# localhost:10250 and the agent itself; name them here to change that, e.g.
# tunnel:
#   forwards:
#     - { name: "kubernetes-api",  local_addr: "localhost:6443" }
#     - { name: "kubelet-metrics", local_addr: "${NODE_IP}:10250" }
#     - { name: "agent-http",      local_addr: "localhost:8080" }
EOF
  chmod 0644 "$tmp"
  mv -f "$tmp" "$config_file"
fi

if [ -n "$root" ]; then
  echo "install: files installed under $root (no user created, no service started)"
  exit 0
fi
systemd-sysusers /usr/lib/sysusers.d/pipeops-agent.conf
if [ ! -d /run/systemd/system ]; then
  echo "install: systemd is not running here; start the agent with: systemctl enable --now pipeops-agent" >&2
  exit 0
fi
systemctl daemon-reload
systemctl enable pipeops-agent.service
systemctl restart pipeops-agent.service
echo "install: pipeops-agent is running (journalctl -u pipeops-agent -f)"
