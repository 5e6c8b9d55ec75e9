#!/usr/bin/env bash
# `make test`: builds, then runs every test. Each test starts the peers it needs (sshd, openssl,
# curl, wrk, python servers, the control-plane test double) on 127.0.0.1 and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== build (debug, with tests) and the release agent"
swift build --build-tests
swift build -c release --static-swift-stdlib --product pipeops-agent
export PIPEOPS_AGENT_BIN="$(swift build -c release --show-bin-path)/pipeops-agent"

echo "== swift test (unit and interop)"
swift test --skip-build 2>&1 | tee /tmp/pipeops-swift-test.log | grep -vE "^Test (Case|Suite) .*(started|passed)" || true
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || { echo "swift test failed"; exit "$status"; }

echo "== fuzz smoke"
scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-5}"

echo "== control-plane test double self-test"
python3 Tests/Fixtures/controlplane/selftest.py

echo "== end to end (agent binary against the control-plane test double)"
python3 -m pytest -q Tests/e2e
