#!/usr/bin/env bash
# One CI job on a buildfs mount, for any CI system:
#   mount the stable path over the newest matching snapshot -> run the build
#   there -> commit it under the job's key -> unmount -> gc the store.
#
#   sudo -E mount-helpers/ci/ci-job.sh -- make -C /work/src -j"$(nproc)"
#
# The build command runs in $BUILDFS_MOUNT (default /work), as root (mounting
# needs root). Its exit status
# is this script's; the snapshot is committed only when it succeeds (set
# BUILDFS_COMMIT_ON_FAILURE=1 to keep a failed build's cache too). The mount
# is always unmounted, also when the build fails or the job is cancelled.
#
# Keys, like a CI cache action's key and restore-keys:
#   BUILDFS_KEY           the key to save as (default: $BUILDFS_KEY_PREFIX-<hash of BUILDFS_KEY_FILES>)
#   BUILDFS_RESTORE_KEYS  space-separated keys or prefixes, first match wins
#                         (default: "$BUILDFS_KEY $BUILDFS_KEY_PREFIX-")
#   BUILDFS_KEY_PREFIX    (default linux-<arch>)
#   BUILDFS_KEY_FILES     files/directories whose contents make the key, space-separated,
#                         relative to the current directory (default: git HEAD's tree id
#                         when in a git checkout, else every file under . except
#                         build outputs: build/, dist/, wheelhouse/, *.egg-info, __pycache__)
# Other settings (environment):
#   BUILDFS_MOUNT         the stable path (default /work)
#   BUILDFS_STORE         the store (default: buildfs's own: $BUILDFS_STORE, ~/.cache/buildfs)
#   BUILDFS_UPPER         this job's writes; must be empty or absent (default: a new
#                         directory under ${RUNNER_TEMP:-/var/tmp}, removed at the end)
#   BUILDFS_MODE          auto | mount | copy (default auto: mount when /dev/fuse exists;
#                         copy = `buildfs export` before and `buildfs import` after, no FUSE)
#   BUILDFS_MOUNT_OPTIONS for -o, e.g. allow_other (default none)
#   BUILDFS_GC_ARGS       limits for `buildfs gc` (default "--max-size 20G --max-age 14d --keep 3";
#                         "none" skips gc)
#   BUILDFS_BIN           the buildfs binary (default: buildfs on PATH)
set -euo pipefail

log() { echo "ci-job: $*" >&2; }
die() { echo "ci-job: error: $*" >&2; exit 1; }

# Whether $1 is a buildfs mount (not just any mount point: in a container the
# stable path may itself be a volume).
is_buildfs_mount() {
  local escaped=${1// /\\040}
  MOUNT_POINT=$escaped awk '$2 == ENVIRON["MOUNT_POINT"] && $3 == "fuse.buildfs" { found = 1 } END { exit !found }' /proc/self/mounts
}

if [ "${1:-}" = "--" ]; then shift; fi
[ $# -gt 0 ] || die "no build command (usage: ci-job.sh -- COMMAND [ARG...])"

buildfs=${BUILDFS_BIN:-$(command -v buildfs || true)}
if [ -z "$buildfs" ] || [ ! -x "$buildfs" ]; then
  die "buildfs not found; install it (mount-helpers/install.sh) or set BUILDFS_BIN"
fi
mount_point=${BUILDFS_MOUNT:-/work}
store_args=()
if [ -n "${BUILDFS_STORE:-}" ]; then store_args=(--store "$BUILDFS_STORE"); fi

# The key.
prefix=${BUILDFS_KEY_PREFIX:-linux-$(uname -m)}
input_hash() {
  local -a inputs
  if [ -z "${BUILDFS_KEY_FILES:-}" ] && tree=$(git rev-parse 'HEAD^{tree}' 2>/dev/null); then
    # A tree id is a hash of every tracked file; add what is modified.
    { echo "$tree"; git diff HEAD 2>/dev/null || true; } | sha256sum | cut -c1-16
    return
  fi
  read -r -a inputs <<< "${BUILDFS_KEY_FILES:-.}"
  # Build outputs are not inputs (a key that hashed wheelhouse/ would be new
  # in every job); the same exclusions as cibuildwheel/buildfs-before-all.sh.
  find "${inputs[@]}" \( -name .git -o -path ./build -o -path ./dist -o -path ./wheelhouse \
                        -o -name '*.egg-info' -o -name __pycache__ \) -prune -o -type f -print0 \
    | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-16
}
key=${BUILDFS_KEY:-$prefix-$(input_hash)}
read -r -a restore_keys <<< "${BUILDFS_RESTORE_KEYS:-$key $prefix-}"

# Restore keys that find nothing would make the mount fail: use them only
# when one of them matches a stored key (exactly, or as a prefix).
stored_keys=$("$buildfs" snapshots --json "${store_args[@]}" | sed -n 's/^ *"key" *: *"\(.*\)",\{0,1\}$/\1/p')
from_args=()
for candidate in "${restore_keys[@]}"; do
  while IFS= read -r stored; do
    if [ -n "$stored" ] && [ "${stored#"$candidate"}" != "$stored" ]; then
      for k in "${restore_keys[@]}"; do from_args+=(--from "$k"); done
      break 2
    fi
  done <<< "$stored_keys"
done
[ ${#from_args[@]} -gt 0 ] || log "no snapshot matches ${restore_keys[*]}: a cold build"

mode=${BUILDFS_MODE:-auto}
case "$mode" in
  auto) if [ -c /dev/fuse ]; then mode=mount; else mode=copy; log "no /dev/fuse: restoring by export instead of a mount"; fi ;;
  mount|copy) ;;
  *) die "BUILDFS_MODE must be auto, mount or copy, not '$mode'" ;;
esac
mkdir -p "$mount_point"

upper=
remove_upper=no
# shellcheck disable=SC2317  # called through the trap below
finish() {
  # Unmount even when the build failed or the job was cancelled.
  if [ "$mode" = mount ] && is_buildfs_mount "$mount_point"; then
    "$buildfs" umount "$mount_point" || log "umount $mount_point failed"
  fi
  if [ "$remove_upper" = yes ]; then rm -rf "$upper"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

if [ "$mode" = mount ]; then
  # A fresh upper directory for this job.
  if [ -n "${BUILDFS_UPPER:-}" ]; then
    upper=$BUILDFS_UPPER
    mkdir -p "$upper"
  else
    upper=$(mktemp -d "${RUNNER_TEMP:-/var/tmp}/buildfs-upper.XXXXXX")
    remove_upper=yes
  fi
  [ -z "$(ls -A "$upper")" ] || die "upper directory $upper is not empty; give each job a new one"
  mount_args=()
  if [ -n "${BUILDFS_MOUNT_OPTIONS:-}" ]; then mount_args=(-o "$BUILDFS_MOUNT_OPTIONS"); fi
  "$buildfs" mount "$mount_point" --upper "$upper" "${store_args[@]}" "${mount_args[@]}" "${from_args[@]}"
else
  # Without FUSE: the snapshot is written out whole, and read back whole.
  [ -z "$(ls -A "$mount_point")" ] || die "$mount_point is not empty; copy mode exports into an empty directory"
  if [ ${#from_args[@]} -gt 0 ]; then "$buildfs" export "$mount_point" "${store_args[@]}" "${from_args[@]}"; fi
fi

log "building in $mount_point (will save as '$key')"
status=0
(cd "$mount_point" && "$@") || status=$?

if [ $status -eq 0 ] || [ "${BUILDFS_COMMIT_ON_FAILURE:-0}" = 1 ]; then
  if [ "$mode" = mount ]; then
    "$buildfs" commit "$mount_point" --key "$key" "${store_args[@]}"
  else
    "$buildfs" import "$mount_point" --key "$key" "${store_args[@]}"
  fi
else
  log "build failed (exit $status): not saving a snapshot"
fi
if [ "$mode" = mount ]; then "$buildfs" umount "$mount_point"; fi
finish
trap - EXIT

gc_args=${BUILDFS_GC_ARGS:---max-size 20G --max-age 14d --keep 3}
if [ "$gc_args" != none ]; then
  read -r -a gc_list <<< "$gc_args"
  "$buildfs" gc "${store_args[@]}" "${gc_list[@]}"
fi
exit $status
