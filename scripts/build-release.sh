#!/usr/bin/env bash
# The shipped build: one static executable. The Swift runtime, OpenSSL, liburing, libyaml and
# c-ares are linked in and glibc is static too, so there is no ld.so, no shared library to
# relocate and fewer resident pages (an idle agent is about 6.5 MiB RSS; it was 18 MiB with
# shared libraries). DNS is c-ares on the loop, which needs nothing at run time but
# /etc/resolv.conf; Tests/e2e/test_static_binary.py proves it.
# The version, commit and build date (scripts/build-identity.sh) are stamped into the binary
# through CShims' build_stamp.c: Swift's -D flags carry no values, C's do.
# Extra arguments go to `swift build` (e.g. --product pipeops-agent).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/build-identity.sh)"
stamp=(-Xcc "-DPIPEOPS_BUILD_VERSION=\"$VERSION\"" -Xcc "-DPIPEOPS_BUILD_COMMIT=\"$COMMIT\""
       -Xcc "-DPIPEOPS_BUILD_DATE=\"$BUILD_DATE\"")
# The linker warns that getaddrinfo (still referenced by libraries linked in, never called:
# DNS is c-ares) and dlopen in a static binary want the same glibc at run time. Everything else
# it prints is kept.
swift build -c release --static-swift-stdlib -Xswiftc -static-executable "${stamp[@]}" "$@" 2>&1 \
  | { grep -v "in statically linked applications requires at runtime the shared libraries" || true; }
