#!/usr/bin/env bash
# Installs buildfs so that `mount -t fuse.buildfs` and /etc/fstab work:
#
#   sudo mount-helpers/install.sh [BINARY]
#   sudo mount -t fuse.buildfs -o upper=/var/lib/buildfs/run,store=/var/cache/buildfs,from=KEY buildfs /work
#   # /etc/fstab:
#   # buildfs  /work  fuse.buildfs  upper=/var/lib/buildfs/run,store=/var/cache/buildfs,allow_other,nofail  0 0
#
# mount(8) hands fuse.* types to mount.fuse3 (package fuse3), which runs
# `buildfs SOURCE MOUNTPOINT -o OPTIONS` through /bin/sh with a fixed PATH, so
# the binary must be in /usr/local/bin or /usr/bin, not in a user's PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-$here/../.build-release/buildfs}   # what scripts/build-release makes
prefix=${PREFIX:-/usr/local}

if [ ! -x "$binary" ]; then
  echo "install.sh: no buildfs binary at $binary; build it first: scripts/build-release" >&2
  exit 1
fi
if ! command -v mount.fuse3 >/dev/null && [ ! -x /sbin/mount.fuse3 ]; then
  echo "install.sh: mount.fuse3 not found; install the fuse3 package (apt-get install fuse3)" >&2
  exit 1
fi

install -D -m 0755 "$binary" "$prefix/bin/buildfs"
install -D -m 0644 "$here/../docs/gc-protocol.md" "$prefix/share/doc/buildfs/gc-protocol.md"
echo "installed $prefix/bin/buildfs ($("$prefix/bin/buildfs" --version))"
