#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in fuzz/ (ASan, leak detection on) against the sans-I/O
# cores they test, one target at a time, at the lowest CPU priority.
#
#   scripts/fuzz.sh [SECONDS] [target ...]     each target for SECONDS
#   FUZZ_RUNS=10000000 scripts/fuzz.sh         each target to that many executions (`make fuzz`)
#   FUZZ_SEED=1 FUZZ_RUNS=5000 scripts/fuzz.sh the same inputs on every machine (the smoke in `make test`)
#   FUZZ_MERGE=1 ...                           afterwards, minimise the committed corpus
#                                              fuzz/corpus/<target> (-set_cover_merge=1, see below)
#
# FUZZ_SECONDS may stand for the first argument; FUZZ_RUNS wins when both are set.
# FUZZ_MAX_SECONDS caps each target's run in FUZZ_RUNS mode (a shared machine): a target stopped
# by it short of FUZZ_RUNS reports "partial" with the executions it reached.
# FUZZ_TIMEOUT (seconds, default 10) is the per-input limit: an input that takes longer is a hang
# and fails the run, as do a crash, a trap and a leak. The input is left in
# .build/fuzz/<target>/crash-*|leak-*|timeout-* and the log in .build/fuzz/<target>/<target>.log.
# The working corpus (.build/fuzz/<target>/corpus) is kept between runs and seeded from fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

all_targets=(HTTPParserFuzz HTTPResponseFuzz ChunkedBodyFuzz WebSocketFrameFuzz SSHPacketFuzz SSHKexFuzz
             JSONParserFuzz YAMLConfigFuzz KubeconfigFuzz WatchLineFuzz)

secs=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
runs=${FUZZ_RUNS:-}
timeout=${FUZZ_TIMEOUT:-10}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

R=Sources/Reactor
A=Sources/Agent
HTTP_CORE="$R/IO/ByteBuffer.swift $R/HTTP/HTTPHeaders.swift $R/HTTP/HTTPParseError.swift $R/HTTP/HTTPParser.swift $R/HTTP/HTTPHeadLines.swift $R/HTTP/HTTPWriter.swift fuzz/Support/HTTPParserRun.swift"
JSON_CORE="$R/JSON/JSONValue.swift $R/JSON/JSONParser.swift $R/JSON/JSONWriter.swift $R/JSON/JSONText.swift"
SSH_CORE="$R/IO/ByteBuffer.swift $R/Loop/TimeAmount.swift $R/Support/Base64.swift $R/Support/SecureRandom.swift
  $R/SSH/SSHWire.swift $R/SSH/SSHError.swift $R/SSH/SSHCrypto.swift $R/SSH/SSHPacketCipher.swift
  $R/IO/ReceiveBuffer.swift $R/SSH/SSHPacketCodec.swift $R/SSH/SSHAlgorithms.swift $R/SSH/SSHHostKey.swift
  $R/SSH/SSHTransport.swift $R/SSH/SSHPrivateKey.swift $R/SSH/SSHServerHostKey.swift
  $R/Support/ErrorChain.swift $R/IO/ConnectionError.swift $R/IO/ConnectError.swift $R/IO/SocketError.swift
  $R/IO/DNS/ResolveError.swift $R/TLS/TLSError.swift $R/JSON/JSONValue.swift"
# The config decoder and what it uses from Reactor (URLs, addresses, durations).
CONFIG_CORE="$R/Loop/TimeAmount.swift $R/IO/SocketAddress.swift $R/HTTP/HTTPClientTypes.swift $R/HTTP/HTTPOrigin.swift
  $R/HTTP/HTTPHeaders.swift $R/Support/URLUserinfo.swift $A/Version.swift $(ls $A/Config/*.swift | grep -v ConfigUse)"

# The Swift sources compiled into each target besides fuzz/<target>.swift.
sources_for() {
  case "$1" in
    HTTPParserFuzz|HTTPResponseFuzz|ChunkedBodyFuzz) echo "$HTTP_CORE" ;;
    WebSocketFrameFuzz) echo "$R/IO/ByteBuffer.swift $R/IO/ReceiveBuffer.swift $R/WebSocket/WebSocketFrame.swift $R/WebSocket/WebSocketDecoder.swift" ;;
    JSONParserFuzz) echo "$JSON_CORE" ;;
    WatchLineFuzz) echo "$JSON_CORE $R/JSON/JSONFields.swift $(for f in LineSplitter ListBodySplitter WatchEvent ObjectStore \
                           PodSummary NodeSummary ServiceSummary KubernetesEvent; do echo "$A/Kubernetes/$f.swift"; done)" ;;
    SSHPacketFuzz) echo "$SSH_CORE" ;;
    SSHKexFuzz) echo "$SSH_CORE $R/SSH/SSHUserAuth.swift $R/SSH/SSHServerUserAuth.swift" ;;
    YAMLConfigFuzz) echo "$CONFIG_CORE" ;;
    KubeconfigFuzz) echo "$CONFIG_CORE $R/Support/Base64.swift $A/Kubernetes/KubeconfigReader.swift $A/Kubernetes/KubernetesAccess.swift $A/Kubernetes/InClusterAccess.swift $A/Support/HostInfo.swift" ;;
    *) echo "unknown fuzz target $1 (targets: ${all_targets[*]})" >&2; return 2 ;;
  esac
}

# Targets that link the C shims (OpenSSL for SSH, libyaml for the YAML reader).
needs_c() { case "$1" in SSH*|YAML*|Kubeconfig*) return 0 ;; *) return 1 ;; esac; }

# The C shims, instrumented like the Swift code, and a module map for `import CShims`.
build_cshims() {
  local out=.build/fuzz/cshims
  mkdir -p "$out"
  printf 'module CShims {\n    umbrella header "%s"\n    export *\n}\n' "$ROOT/Sources/CShims/include/CShims.h" >"$out/module.modulemap"
  for c in Sources/CShims/*.c; do
    local o="$out/$(basename "$c" .c).o"
    [ "$o" -nt "$c" ] && [ "$o" -nt Sources/CShims/include/CShims.h ] && continue
    clang -O1 -g -fsanitize=fuzzer-no-link,address -I Sources/CShims/include -c "$c" -o "$o"
  done
}

build_target() {
  local t=$1 out=.build/fuzz/$1
  local srcs; srcs=$(sources_for "$t")
  # Rebuilt only when a source (or this script) is newer than the binary.
  local stale=0
  for f in $srcs "fuzz/$t.swift" "$0"; do [ "$f" -nt "$out/$t" ] && stale=1; done
  [ $stale = 0 ] && return 0
  local extra=() module=FuzzTarget
  if needs_c "$t"; then
    build_cshims
    extra=(-I .build/fuzz/cshims -Xcc -I"$ROOT/Sources/CShims/include" .build/fuzz/cshims/*.o -lcrypto -lssl -luring -lyaml -lcares)
  fi
  # The Agent's files say `import Reactor`; compiled as module Reactor, that import is the module itself.
  case "$srcs" in *Sources/Agent/*) module=Reactor ;; esac
  # shellcheck disable=SC2086
  if ! swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name "$module" \
      $srcs "fuzz/$t.swift" "${extra[@]}" -o "$out/$t" >"$out/build.log" 2>&1; then
    # The linker's "Cannot export local symbol __asan_*" chatter is noise; show the rest.
    grep -v -e "Cannot export local symbol" -e "ignoring import" "$out/build.log" >&2
    return 1
  fi
}

# Per-target limits: the longest input worth trying.
max_len_for() { case "$1" in ChunkedBodyFuzz) echo 1024 ;;
    YAMLConfigFuzz|KubeconfigFuzz) echo 4096 ;; *) echo 8192 ;; esac; }

# One line from the log: executions, time, exec/s, coverage, corpus.
summarise() {
  local t=$1 log=$2 result=$3
  local execs rate last secs_taken
  execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: //p' "$log" | tail -1)
  rate=${rate// /}
  secs_taken=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  local cov ft corp
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  printf 'fuzz: %-20s %-6s runs=%s time=%ss exec/s=%s cov=%s ft=%s corpus=%s\n' \
    "$t" "$result" "${execs:-?}" "${secs_taken:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
}

status=0
for t in "${targets[@]}"; do
  sources_for "$t" >/dev/null || exit 2
  out=.build/fuzz/$t
  mkdir -p "$out/corpus"
  build_target "$t" || exit 1
  [ -d "fuzz/corpus/$t" ] && cp -n "fuzz/corpus/$t"/* "$out/corpus/" 2>/dev/null || true
  if [ -n "$runs" ]; then
    limit=(-runs="$runs")
    [ -n "${FUZZ_MAX_SECONDS:-}" ] && limit+=(-max_total_time="$FUZZ_MAX_SECONDS")
    echo "fuzz: $t to $runs executions${FUZZ_MAX_SECONDS:+ (at most ${FUZZ_MAX_SECONDS}s)}"
  else limit=(-max_total_time="$secs"); echo "fuzz: $t for ${secs}s"; fi
  log=$out/$t.log
  # The Swift runtime's backtracer reads the crashed process's memory, which ASan reports as an
  # overflow that hides the real failure: off, so a trap shows as the trap it is.
  # FUZZ_SEED fixes libFuzzer's random choices: with FUZZ_RUNS, a run is the same on every machine
  # (make test's smoke: it must not fail on whatever a faster machine happens to reach).
  [ -n "${FUZZ_SEED:-}" ] && limit+=(-seed="$FUZZ_SEED")
  if (cd "$out" && SWIFT_BACKTRACE=enable=no nice -n 19 "./$t" "${limit[@]}" -max_len="$(max_len_for "$t")" -timeout="$timeout" \
        -detect_leaks=1 -print_final_stats=1 corpus >"$t.log" 2>&1); then
    result=ok
    if [ -n "$runs" ] && [ "$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -1)" -lt "$runs" ]; then result=partial; fi
    summarise "$t" "$log" $result
  else
    summarise "$t" "$log" FAILED
    echo "fuzz: $t FAILED; see $log and $out/crash-* leak-* timeout-*" >&2
    grep -E -A30 "^==[0-9]+==|ERROR: libFuzzer|Fatal error|Swift runtime failure|SUMMARY" "$log" | head -60 >&2 || tail -40 "$log" >&2
    status=1
    continue
  fi
  if [ -n "${FUZZ_MERGE:-}" ]; then
    # The smallest set of inputs that covers every feature the committed and the working corpus
    # reach replaces the generated (hash-named) inputs in fuzz/corpus/<target>; named inputs
    # (real seeds, crash reproducers) always stay.
    committed=fuzz/corpus/$t
    mkdir -p "$committed"
    before=$(ls "$committed" | wc -l)
    rm -rf "$out/merged" && mkdir "$out/merged"
    (cd "$out" && nice -n 19 "./$t" -set_cover_merge=1 -max_len="$(max_len_for "$t")" merged "$ROOT/$committed" corpus >merge.log 2>&1)
    find "$committed" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
    # libFuzzer names inputs by their SHA-1: one that a named seed already holds is not copied.
    seeds=$(find "$committed" -type f -exec sha1sum {} + | cut -d' ' -f1)
    for f in "$out/merged"/*; do
      [ -e "$f" ] && ! grep -qx "$(basename "$f")" <<<"$seeds" && cp "$f" "$committed/" || true
    done
    echo "fuzz: $t corpus: $before -> $(ls "$committed" | wc -l) files in $committed"
  fi
done
exit $status
