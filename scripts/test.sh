#!/usr/bin/env bash
# Builds and runs every test. Services the tests need are started by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift build --build-tests -q
swift build -c release --product pipeops-agent -q
export PIPEOPS_AGENT_BIN="$(swift build -c release --show-bin-path)/pipeops-agent"
swift test --skip-build
