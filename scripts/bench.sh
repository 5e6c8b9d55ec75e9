#!/usr/bin/env bash
# Runs every benchmark harness in bench/ (each measures against its baseline in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.sh; do
  echo "== $b"
  "$b"
done
