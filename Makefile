# The README's commands. `make run` and `make test` work on a fresh machine.
SWIFT ?= swift
BIN_DIR = $(shell $(SWIFT) build -c release --show-bin-path 2>/dev/null)
LOG_LEVEL ?= info

.PHONY: deps build release image test run bench bench-tunnel soak strace fuzz clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

# The shipped binary: one static executable (scripts/build-release.sh says why).
release: deps
	scripts/build-release.sh

# The OCI image, without a Docker engine (scripts/image.sh): .build/image/oci and a docker-archive.
image: deps
	scripts/image.sh

test: deps
	scripts/test.sh

run: release
	scripts/run.sh

bench: release
	scripts/bench.sh

# The tunnel bench alone: BENCH_TUNNEL=python|swift|URL, BENCH_REFERENCE_CLIENT=/path/to/chisel (bench/tunnel.sh).
bench-tunnel: release
	bench/tunnel.sh

# The release agent under tunnel churn and faults for SOAK_MINUTES (Tests/soak/soak.py): RSS and
# descriptors every 10 s, then the bounded-resource and intact-bytes verdicts. Tables in .build/soak/.
SOAK_MINUTES ?= 60
soak: release
	SOAK_MINUTES=$(SOAK_MINUTES) PIPEOPS_AGENT_BIN=$(BIN_DIR)/pipeops-agent python3 Tests/soak/soak.py

# The agent under strace with debug logs: strace lines and log lines read side by side. On epoll:
# io_uring's I/O does not show in strace.
# Standalone unless ARGS says otherwise (e.g. ARGS="--config ~/.pipeops-agent.yaml").
ARGS ?= --set pipeops.api_url= --set tunnel.enabled=false
strace: release
	strace -f -tt -e trace=!futex $(BIN_DIR)/pipeops-agent --log-level debug --set reactor.backend=epoll $(ARGS)

# The fuzzing campaign (scripts/fuzz.sh, fuzz/README.md): every libFuzzer target in fuzz/ to
# FUZZ_RUNS executions with ASan, leak detection and a per-input timeout, one line of results per
# target. FUZZ_MAX_SECONDS caps each target's run; FUZZ_MERGE=1 then minimises the corpus into
# fuzz/corpus/<target>. `make test` runs a 5-second smoke of each instead.
FUZZ_RUNS ?= 10000000
FUZZ_MAX_SECONDS ?=
FUZZ_MERGE ?=
fuzz:
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_MAX_SECONDS=$(FUZZ_MAX_SECONDS) FUZZ_MERGE=$(FUZZ_MERGE) scripts/fuzz.sh

clean:
	rm -rf .build
