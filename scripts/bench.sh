#!/usr/bin/env bash
# Runs every benchmark harness in bench/ (each measures against its baseline in the same run).
# The harnesses are the executable scripts; bench/common.sh is their shared library.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.sh; do
  [ -x "$b" ] || continue
  echo "== $b"
  "$b"
done
