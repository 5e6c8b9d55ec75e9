#!/bin/sh
# Builds the SSH packet/parser fuzzer with libFuzzer + ASan from the sources directly:
#   fuzz/build-ssh-fuzz.sh                 -> .build/fuzz/ssh-packet-fuzz
#   .build/fuzz/ssh-packet-fuzz -max_total_time=60 .build/fuzz/corpus-ssh
# Only the sans-I/O SSH files are compiled in (no loop, no Logging).
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/.build/fuzz"
mkdir -p "$OUT/cshims" "$OUT/corpus-ssh"
cat > "$OUT/cshims/module.modulemap" <<MAP
module CShims {
    umbrella header "$ROOT/Sources/CShims/include/CShims.h"
    export *
}
MAP
clang -O1 -g -fsanitize=fuzzer-no-link,address -I "$ROOT/Sources/CShims/include" \
    -c "$ROOT/Sources/CShims/crypto_shims.c" -o "$OUT/crypto_shims.o"
clang -O1 -g -fsanitize=fuzzer-no-link,address -I "$ROOT/Sources/CShims/include" \
    -c "$ROOT/Sources/CShims/io_shims.c" -o "$OUT/io_shims.o"
S="$ROOT/Sources/Reactor"
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name SSHFuzz \
    -I "$OUT/cshims" -Xcc -I"$ROOT/Sources/CShims/include" \
    "$S/IO/ByteBuffer.swift" "$S/Loop/TimeAmount.swift" "$S/Support/Base64.swift" "$S/Support/SecureRandom.swift" \
    "$S/SSH/SSHWire.swift" "$S/SSH/SSHError.swift" "$S/SSH/SSHCrypto.swift" "$S/SSH/SSHPacketCipher.swift" \
    "$S/IO/ReceiveBuffer.swift" "$S/SSH/SSHPacketCodec.swift" "$S/SSH/SSHAlgorithms.swift" "$S/SSH/SSHHostKey.swift" "$S/SSH/SSHTransport.swift" \
    "$S/SSH/SSHPrivateKey.swift" "$S/SSH/SSHServerHostKey.swift" \
    "$ROOT/fuzz/SSHPacketFuzz.swift" "$OUT/crypto_shims.o" "$OUT/io_shims.o" \
    -lcrypto -lssl -luring -lyaml -o "$OUT/ssh-packet-fuzz" 2>&1 | grep -v "Cannot export local symbol" || true
[ -x "$OUT/ssh-packet-fuzz" ]
echo "built $OUT/ssh-packet-fuzz"
