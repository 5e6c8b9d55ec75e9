#!/usr/bin/env bash
# Installs what building, testing and benchmarking need. Idempotent: skips what is present.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$here/scripts/apt-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! python3 -m pip install -q --disable-pip-version-check -r "$here/Tests/requirements.txt" >/tmp/pipeops-pip.log 2>&1; then
  # Debian's own Python refuses system-wide installs unless told.
  python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$here/Tests/requirements.txt"
fi
# checkov in a virtualenv of its own (Tests/requirements-checkov.txt says why).
checkov_venv=/opt/pipeops/checkov
installed=$("$checkov_venv/bin/python" -m pip freeze 2>/dev/null || true)
if ! grep -qxF -f <(grep -vE '^\s*(#|$)' "$here/Tests/requirements-checkov.txt") <<<"$installed"; then
  echo "deps: installing checkov into $checkov_venv"
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/Tests/requirements-checkov.txt"
fi
