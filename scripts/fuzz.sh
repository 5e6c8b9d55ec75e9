#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in fuzz/ against the sans-I/O cores they test.
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
# Targets: HTTPParserFuzz WebSocketFrameFuzz SSHPacketFuzz JSONParserFuzz WatchLineFuzz. Binaries and corpora go to .build/fuzz/.
# A crash leaves its input in .build/fuzz/<target>/crash-* and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(HTTPParserFuzz WebSocketFrameFuzz SSHPacketFuzz JSONParserFuzz WatchLineFuzz)

R=Sources/Reactor
sources_for() {
  case "$1" in
    HTTPParserFuzz) echo "$R/IO/ByteBuffer.swift $R/HTTP/HTTPHeaders.swift $R/HTTP/HTTPParseError.swift $R/HTTP/HTTPParser.swift $R/HTTP/HTTPHeadLines.swift" ;;
    WebSocketFrameFuzz) echo "$R/IO/ByteBuffer.swift $R/IO/ReceiveBuffer.swift $R/WebSocket/WebSocketFrame.swift $R/WebSocket/WebSocketDecoder.swift" ;;
    JSONParserFuzz) echo "$R/JSON/JSONValue.swift $R/JSON/JSONParser.swift $R/JSON/JSONWriter.swift $R/JSON/JSONText.swift" ;;
    WatchLineFuzz) echo "Sources/Agent/Kubernetes/LineSplitter.swift Sources/Agent/Kubernetes/ListBodySplitter.swift" ;;
    SSHPacketFuzz) echo "(built by fuzz/build-ssh-fuzz.sh: it needs the C shims)" ;;
    *) echo "unknown fuzz target $1" >&2; exit 2 ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  out=.build/fuzz/$t
  mkdir -p "$out/corpus"
  if [ "$t" = SSHPacketFuzz ]; then
    fuzz/build-ssh-fuzz.sh >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; exit 1; }
    cp .build/fuzz/ssh-packet-fuzz "$out/$t"
  # shellcheck disable=SC2046
  # The linker's "Cannot export local symbol __asan_*" chatter is noise; show the log only on failure.
  elif ! swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name FuzzTarget \
      $(sources_for "$t") "fuzz/$t.swift" -o "$out/$t" >"$out/build.log" 2>&1; then
    grep -v "Cannot export local symbol" "$out/build.log" >&2
    exit 1
  fi
  [ -d "fuzz/corpus/$t" ] && cp -n "fuzz/corpus/$t"/* "$out/corpus/" 2>/dev/null || true
  echo "fuzz: $t for ${secs}s"
  if ! (cd "$out" && "./$t" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 corpus 2>"$t.log"); then
    echo "fuzz: $t FAILED; see $out/$t.log and $out/crash-*" >&2
    tail -40 "$out/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|Done" "$out/$t.log" | sed "s/^/fuzz: $t: /"
  fi
done
exit $status
