#!/usr/bin/env bash
# `make run`: starts the agent from the release build with readable logs. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(swift build -c release --show-bin-path)
exec "$BIN/pipeops-agent" --log-format console "$@"
