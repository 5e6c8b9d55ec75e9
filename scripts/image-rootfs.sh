#!/usr/bin/env bash
# The image's whole file tree, shared by scripts/image.sh and deployments/Dockerfile so both
# ship the same thing: the stripped static agent, the CA bundle, and /etc/passwd and /etc/group
# entries for the agent's user (UID/GID 1000). Nothing else: no shell, no package manager.
# Modes and times are set explicitly so the machine's umask and clock do not leak in.
#   scripts/image-rootfs.sh ROOT BINARY [CA_BUNDLE]
set -euo pipefail
root=${1:?usage: image-rootfs.sh ROOT BINARY [CA_BUNDLE]}
binary=${2:?usage: image-rootfs.sh ROOT BINARY [CA_BUNDLE]}
ca_bundle=${3:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca_bundle" ] || { echo "image-rootfs: no CA bundle at $ca_bundle (Debian's ca-certificates)" >&2; exit 1; }
install -d -m 0755 "$root/usr/local/bin" "$root/etc/ssl/certs"
install -m 0755 "$binary" "$root/usr/local/bin/pipeops-agent"
strip --strip-all "$root/usr/local/bin/pipeops-agent"
install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'pipeops:x:1000:1000:PipeOps agent:/nonexistent:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'pipeops:x:1000:\n' > "$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
find "$root" -exec touch -h -d @0 {} +
