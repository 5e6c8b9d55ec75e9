#!/usr/bin/env bash
# `make test`: builds, then runs every test. Each test starts the peers it needs (sshd, openssl,
# curl, wrk, tinyproxy, python servers, the control-plane test double) on 127.0.0.1 and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=$(mktemp -d /tmp/pipeops-test.XXXXXX)

# A failed swift test: the printed summary is the log's tail, and the failures themselves may be
# far above it, so show the failing lines (XCTest and swift-testing), then stop with its status.
fail_with_excerpt() {
  echo "== what failed in $1 (from the full log)"
  grep -E ": error: |Test Case .* failed|Test Suite .* failed|✘|Fatal error|Program crashed" "$2" | head -n 60 || true
  echo "$1 failed (full log: $2)"
  exit "$3"
}
echo "== build (debug, with tests) and the release agent"
swift build --build-tests
scripts/build-release.sh --product pipeops-agent
export PIPEOPS_AGENT_BIN="$(swift build -c release --show-bin-path)/pipeops-agent"

echo "== swift test (unit and interop)"
set +e
swift test --skip-build > "$logs/swift.log" 2>&1
swift_status=$?
set -e
grep -vE "^Test (Case|Suite) .*(started|passed)|^\[|Test run with 0 tests" "$logs/swift.log" | grep -vE "^\s*$" | tail -n 80
[ "$swift_status" -eq 0 ] || fail_with_excerpt "swift test" "$logs/swift.log" "$swift_status"

echo "== swift test, the Reactor suite again on the io_uring loop backend"
set +e
PIPEOPS_TEST_BACKEND=io_uring swift test --skip-build --filter ReactorTests > "$logs/swift-io_uring.log" 2>&1
uring_status=$?
set -e
grep -E "error|Executed [0-9]+ tests" "$logs/swift-io_uring.log" | tail -n 20
[ "$uring_status" -eq 0 ] || fail_with_excerpt "swift test on io_uring" "$logs/swift-io_uring.log" "$uring_status"

echo "== fuzz smoke"
# A fixed seed and a fixed number of runs: the same inputs on every machine (the committed corpus
# replayed, then 5,000 mutations per target). `make fuzz` is the campaign that explores.
FUZZ_SEED=1 FUZZ_RUNS="${FUZZ_SMOKE_RUNS:-5000}" scripts/fuzz.sh

echo "== control-plane test double self-test"
python3 Tests/Fixtures/controlplane/selftest.py | tee "$logs/selftest.log" | tail -n 3

echo "== end to end (agent binary against the control-plane test double, sshd, tinyproxy)"
python3 -m pytest -q -p no:cacheprovider Tests/e2e | tee "$logs/e2e.log"
echo "== end to end: the tunnel tests again with agent and tunnel server on io_uring"
PIPEOPS_REACTOR_BACKEND=io_uring python3 -m pytest -q -p no:cacheprovider Tests/e2e/test_tunnel.py | tee "$logs/e2e-io_uring.log"

echo "== tunnel bench in smoke mode (one second per measure; nothing asserted about speed, so it cannot rot)"
BENCH_SMOKE=1 BENCH_TUNNEL=swift bench/tunnel.sh | tail -n 20

echo "== soak, two minutes (tunnel churn and faults; bounded RSS and descriptors, intact bytes; nothing timed)"
SOAK_MINUTES=2 python3 Tests/soak/soak.py | tee "$logs/soak.log" | tail -n 32

swift_n=$(grep -oE "Executed [0-9]+ tests?, with [0-9]+ failures" "$logs/swift.log" | tail -1 | awk '{print $2}')
uring_n=$(grep -oE "Executed [0-9]+ tests?, with [0-9]+ failures" "$logs/swift-io_uring.log" | tail -1 | awk '{print $2}')
self_n=$(grep -oE "selftest: [0-9]+ passed" "$logs/selftest.log" | awk '{print $2}')
e2e_n=$(grep -oE "[0-9]+ passed" "$logs/e2e.log" | tail -1 | awk '{print $1}')
e2e_uring_n=$(grep -oE "[0-9]+ passed" "$logs/e2e-io_uring.log" | tail -1 | awk '{print $1}')
soak_n=1   # the soak is one check: reaching this line means it passed (set -e, pipefail)
echo "make test: $((swift_n + uring_n + self_n + e2e_n + e2e_uring_n + soak_n)) passed, 0 failed"
