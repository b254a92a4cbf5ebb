#!/usr/bin/env bash
# cibuildwheel `before-all`: put the last build's state (the ccache directory,
# build trees) at a stable path inside the build container, restored lazily
# from a buildfs store on a host volume. Pair: buildfs-after-all.sh.
#
# Copy this directory into your project (say as ci/) and add to pyproject.toml
# (the full snippet, with the container flags, is pyproject-snippet.toml):
#
#   [tool.cibuildwheel.linux]
#   before-all = ["bash {package}/ci/buildfs-before-all.sh {package}"]
#   repair-wheel-command = ["auditwheel repair -w {dest_dir} {wheel}",
#                           "bash {package}/ci/buildfs-after-all.sh"]
#   [tool.cibuildwheel.linux.environment]
#   BUILDFS_STORE = "/buildfs-store"
#   BUILDFS_MOUNT = "/work"
#   CCACHE_DIR = "/work/.ccache"
#   CC = "ccache gcc"
#
# What it does, in the container:
#   1. computes the cache key like a CI cache action would:
#        KEY = $BUILDFS_KEY_PREFIX-<platform>-<hash of the build inputs>
#      and the restore keys: KEY itself, then the prefix $BUILDFS_KEY_PREFIX-<platform>-
#      (the newest snapshot of this platform, whatever its inputs);
#   2. mounts $BUILDFS_MOUNT (FUSE) with a fresh upper directory, over the
#      first snapshot the restore keys find (nothing is copied: files are read
#      from the store when the build touches them);
#      or, where the container has no FUSE (BUILDFS_MODE=copy, or no
#      /dev/fuse), exports that snapshot into $BUILDFS_MOUNT instead;
#   3. writes what it decided to $BUILDFS_STATE for buildfs-after-all.sh.
#
# Settings (environment), all optional:
#   BUILDFS_STORE        the store, on a host volume     (default /buildfs-store)
#   BUILDFS_MOUNT        the stable path                 (default /work)
#   BUILDFS_UPPER        this container's own writes     (default /var/lib/buildfs/upper)
#   BUILDFS_MODE         auto | mount | copy             (default auto: mount when /dev/fuse exists)
#   BUILDFS_KEY_PREFIX   first part of every key         (default cibw)
#   BUILDFS_PLATFORM     second part                     (default $AUDITWHEEL_PLAT, else linux_<arch>)
#   BUILDFS_KEY_FILES    build inputs to hash, relative to the package, space-separated
#                        (default: the whole package except .git, build/, dist/, wheelhouse/)
#   BUILDFS_KEY          the key, overriding all of the above
#   BUILDFS_RESTORE_KEYS space-separated keys/prefixes to restore from (default: KEY, then the prefix)
#   BUILDFS_BIN          the buildfs binary (default: buildfs on PATH, else /host/usr/local/bin/buildfs,
#                        which is the host's, seen through cibuildwheel's /host mount)
#   BUILDFS_STATE        where the decisions are kept    (default /run/buildfs-cibuildwheel.env)
# The first argument, if given, is the package directory ({package}; default /project).
set -euo pipefail

log() { echo "buildfs-before-all: $*" >&2; }
die() { echo "buildfs-before-all: error: $*" >&2; exit 1; }

# Whether $1 is a buildfs mount (not just any mount point: in a container the
# stable path may itself be a volume).
is_buildfs_mount() {
  local escaped=${1// /\\040}
  MOUNT_POINT=$escaped awk '$2 == ENVIRON["MOUNT_POINT"] && $3 == "fuse.buildfs" { found = 1 } END { exit !found }' /proc/self/mounts
}

package=${1:-${BUILDFS_PACKAGE:-/project}}
mount_point=${BUILDFS_MOUNT:-/work}
store=${BUILDFS_STORE:-/buildfs-store}
upper=${BUILDFS_UPPER:-/var/lib/buildfs/upper}
mode=${BUILDFS_MODE:-auto}
prefix=${BUILDFS_KEY_PREFIX:-cibw}
state=${BUILDFS_STATE:-/run/buildfs-cibuildwheel.env}

# The binary. It must run in this image: see "cibuildwheel" in the README.
buildfs=${BUILDFS_BIN:-}
if [ -z "$buildfs" ]; then
  buildfs=$(command -v buildfs || true)
  [ -n "$buildfs" ] || buildfs=/host/usr/local/bin/buildfs
fi
[ -x "$buildfs" ] || die "no buildfs binary at '$buildfs'; set BUILDFS_BIN (environment) to one that runs in this image"
if ! version=$("$buildfs" --version 2>&1); then
  die "$buildfs does not run in this image ($version); build it for this image (static Swift stdlib, fuse3-libs and libzstd installed) or mount on the host instead (README: cibuildwheel, host mount)"
fi

[ -d "$store" ] || die "store $store is not there; bind-mount the host volume into the container (create-args: -v /var/cache/buildfs:$store)"
[ -w "$store" ] || die "store $store is not writable; check the volume's permissions on the host"

case "$mode" in
  auto)
    if [ -c /dev/fuse ]; then
      mode=mount
    else
      mode=copy
      log "no /dev/fuse in this container (create-args need --device /dev/fuse --cap-add SYS_ADMIN): restoring by export instead of a mount"
    fi ;;
  mount|copy) ;;
  *) die "BUILDFS_MODE must be auto, mount or copy, not '$mode'" ;;
esac

# The key: platform + hash of the build inputs, like a CI cache key.
platform=${BUILDFS_PLATFORM:-${AUDITWHEEL_PLAT:-linux_$(uname -m)}}
input_hash() {
  local -a inputs
  read -r -a inputs <<< "${BUILDFS_KEY_FILES:-.}"
  (
    cd "$package" || exit 1
    find "${inputs[@]}" \( -name .git -o -path ./build -o -path ./dist -o -path ./wheelhouse \
                          -o -name '*.egg-info' -o -name __pycache__ \) -prune -o -type f -print0 \
      | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-16
  )
}
if [ -n "${BUILDFS_KEY:-}" ]; then
  key=$BUILDFS_KEY
else
  [ -d "$package" ] || die "package directory $package does not exist (pass {package} as the first argument)"
  hash=$(input_hash) || die "cannot hash the build inputs in $package (BUILDFS_KEY_FILES='${BUILDFS_KEY_FILES:-.}')"
  key=$prefix-$platform-$hash
fi
read -r -a restore_keys <<< "${BUILDFS_RESTORE_KEYS:-$key $prefix-$platform-}"

# Which restore keys find something (exact key, or a prefix of one).
stored_keys=$("$buildfs" snapshots --json --store "$store" | sed -n 's/^ *"key" *: *"\(.*\)",\{0,1\}$/\1/p')
from_args=()
found=
for candidate in "${restore_keys[@]}"; do
  while IFS= read -r stored; do
    if [ -n "$stored" ] && [ "${stored#"$candidate"}" != "$stored" ]; then found=$candidate; break 2; fi
  done <<< "$stored_keys"
done
if [ -n "$found" ]; then
  for candidate in "${restore_keys[@]}"; do from_args+=(--from "$candidate"); done
else
  log "no snapshot matches ${restore_keys[*]} yet: starting from an empty $mount_point (a cold build)"
fi

mkdir -p "$mount_point"
if [ "$mode" = mount ]; then
  if is_buildfs_mount "$mount_point"; then
    die "$mount_point is already a buildfs mount; was before-all run twice?"
  fi
  mkdir -p "$upper"
  if [ -n "$(ls -A "$upper")" ] && [ ${#from_args[@]} -gt 0 ]; then
    die "upper directory $upper is not empty; a snapshot can only go under an empty one (set BUILDFS_UPPER)"
  fi
  "$buildfs" mount "$mount_point" --upper "$upper" --store "$store" "${from_args[@]}"
else
  if [ -n "$(ls -A "$mount_point")" ]; then
    die "$mount_point is not empty; copy mode exports the snapshot into an empty directory"
  fi
  if [ ${#from_args[@]} -gt 0 ]; then
    "$buildfs" export "$mount_point" --store "$store" "${from_args[@]}"
  fi
fi

{
  printf 'BUILDFS_STATE_MODE=%q\n' "$mode"
  printf 'BUILDFS_STATE_MOUNT=%q\n' "$mount_point"
  printf 'BUILDFS_STATE_STORE=%q\n' "$store"
  printf 'BUILDFS_STATE_KEY=%q\n' "$key"
  printf 'BUILDFS_STATE_BIN=%q\n' "$buildfs"
} > "$state"
log "$mount_point ready ($mode mode, store $store); buildfs-after-all.sh will save it as '$key'"
