#!/usr/bin/env bash
# Prints the build's identity as shell assignments (VERSION, COMMIT, BUILD_DATE) for
# build-release.sh (which stamps them into the binary) and image.sh (which puts them in the
# image's annotations), so both say the same thing.
#   VERSION     $PIPEOPS_VERSION, else the default in Sources/Agent/Version.swift
#   COMMIT      $PIPEOPS_COMMIT, else `git rev-parse HEAD` (+ "-dirty" with uncommitted changes)
#   BUILD_DATE  $SOURCE_DATE_EPOCH, else the commit's time, so that building the same commit
#               twice gives the same bytes (reproducible-builds.org's convention); UTC, RFC 3339
set -euo pipefail
cd "$(dirname "$0")/.."
version=${PIPEOPS_VERSION:-$(sed -n 's/.*public static let version = .* ?? "\([^"]*\)".*/\1/p' Sources/Agent/Version.swift)}
commit=${PIPEOPS_COMMIT:-}
epoch=${SOURCE_DATE_EPOCH:-}
if git rev-parse --git-dir >/dev/null 2>&1; then
  if [ -z "$commit" ]; then
    commit=$(git rev-parse HEAD)
    git diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
  fi
  [ -n "$epoch" ] || epoch=$(git log -1 --format=%ct)
fi
[ -n "$commit" ] || commit=unknown
[ -n "$epoch" ] || epoch=$(date +%s)
case "$version$commit" in *[!A-Za-z0-9.+_-]*) echo "build-identity: bad version or commit: $version $commit" >&2; exit 1;; esac
echo "VERSION=$version"
echo "COMMIT=$commit"
echo "BUILD_DATE=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
