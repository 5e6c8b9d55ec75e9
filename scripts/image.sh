#!/usr/bin/env bash
# `make image`: the agent's OCI image, built without a Docker engine from Debian's umoci and skopeo.
#
# The image is one layer, the tree of scripts/image-rootfs.sh (the static, stripped agent, the CA
# bundle, the agent's user; no shell, no package manager, no libraries: the binary needs none, see
# build-release.sh). Building the same commit twice gives the same
# bytes: the layer tar is written in name order with fixed times and owners, and every time
# stamp umoci writes (config, history) is the commit's time from build-identity.sh.
# (`umoci insert` is avoided on purpose: Debian's 0.4.7 writes a truncated layer with it.)
#
# Output in .build/image/ (OUT_DIR=... to change):
#   oci/                       the OCI image layout, tag $VERSION
#   pipeops-agent-image.tar    a docker-archive for `docker load`, `ctr import`, `k3s ctr images import`
# IMAGE_NAME (default pipeops/agent-swift) names the image in the docker-archive.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in umoci skopeo strip tar; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing (make deps installs it)" >&2; exit 1; }
done
eval "$(scripts/build-identity.sh)"
out=${OUT_DIR:-.build/image}
name=${IMAGE_NAME:-pipeops/agent-swift}
source_url=${PIPEOPS_IMAGE_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || echo "https://github.com/PipeOpsHQ/pipeops-k8-agent")}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

scripts/build-release.sh --product pipeops-agent
binary="$(swift build -c release --show-bin-path)/pipeops-agent"

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/pipeops-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

root="$work/rootfs"
scripts/image-rootfs.sh "$root" "$binary" "$ca_bundle"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/layer.tar" .

layout="$out/oci"
umoci init --layout "$layout"
umoci new --image "$layout:$VERSION"
umoci raw add-layer --image "$layout:$VERSION" \
  --history.created "$BUILD_DATE" --history.created_by "scripts/image.sh" \
  --history.comment "pipeops-agent $VERSION, CA certificates, /etc/passwd" "$work/layer.tar"
# PIPEOPS_STATE_PATH: the state lives on a volume there (the root filesystem is read-only);
# HOME is left unset on purpose, so no state path under a home directory is chosen.
umoci config --image "$layout:$VERSION" --no-history \
  --created "$BUILD_DATE" --author "PipeOps" \
  --config.user 1000:1000 \
  --config.entrypoint /usr/local/bin/pipeops-agent \
  --config.exposedports 8080/tcp \
  --config.stopsignal SIGTERM \
  --config.workingdir / \
  --config.env PATH=/usr/local/bin \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.env PIPEOPS_STATE_PATH=/var/lib/pipeops/state.json \
  --config.label "org.opencontainers.image.title=pipeops-agent" \
  --config.label "org.opencontainers.image.source=$source_url" \
  --config.label "org.opencontainers.image.revision=$COMMIT" \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label "org.opencontainers.image.created=$BUILD_DATE" \
  --manifest.annotation "org.opencontainers.image.title=pipeops-agent" \
  --manifest.annotation "org.opencontainers.image.source=$source_url" \
  --manifest.annotation "org.opencontainers.image.revision=$COMMIT" \
  --manifest.annotation "org.opencontainers.image.version=$VERSION" \
  --manifest.annotation "org.opencontainers.image.created=$BUILD_DATE"
umoci gc --layout "$layout"

skopeo copy -q "oci:$layout:$VERSION" "docker-archive:$out/pipeops-agent-image.tar:$name:$VERSION"

layer_bytes=$(stat -c %s "$work/layer.tar")
gz_bytes=$(skopeo inspect --raw "oci:$layout:$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["size"])')
echo "image: $name:$VERSION (commit $COMMIT, created $BUILD_DATE)"
echo "image: layer $((layer_bytes / 1024)) KiB uncompressed, $((gz_bytes / 1024)) KiB gzip"
echo "image: $layout and $out/pipeops-agent-image.tar ($(sha256sum "$out/pipeops-agent-image.tar" | cut -c1-16)...)"
