#!/usr/bin/env bash
# cibuildwheel: save the stable path that buildfs-before-all.sh set up as a
# snapshot, then keep the store bounded. Run it in the build container after
# a wheel is built. cibuildwheel has no "after-all" hook, so chain it to the
# repair step, where it runs once per wheel (each commit costs only what
# changed since the last one, and the last one wins):
#
#   [tool.cibuildwheel.linux]
#   repair-wheel-command = ["auditwheel repair -w {dest_dir} {wheel}",
#                           "bash {package}/ci/buildfs-after-all.sh"]
#
# The container is removed after the last wheel, and the mount with it; the
# snapshot is safe in the store by then. Pass --umount to unmount as well
# (for running these scripts outside cibuildwheel).
#
# Settings (environment), all optional:
#   BUILDFS_GC_ARGS   limits for `buildfs gc` (default "--max-size 10G --max-age 14d --keep 2";
#                     set to "none" to skip gc, e.g. when a systemd timer on the host does it)
#   BUILDFS_STATE     what buildfs-before-all.sh decided (default /run/buildfs-cibuildwheel.env)
set -euo pipefail

log() { echo "buildfs-after-all: $*" >&2; }
die() { echo "buildfs-after-all: error: $*" >&2; exit 1; }

# Whether $1 is a buildfs mount (not just any mount point: in a container the
# stable path may itself be a volume).
is_buildfs_mount() {
  local escaped=${1// /\\040}
  MOUNT_POINT=$escaped awk '$2 == ENVIRON["MOUNT_POINT"] && $3 == "fuse.buildfs" { found = 1 } END { exit !found }' /proc/self/mounts
}

unmount=no
for argument in "$@"; do
  case "$argument" in
    --umount) unmount=yes ;;
    *) die "unknown argument '$argument' (usage: buildfs-after-all.sh [--umount])" ;;
  esac
done

state=${BUILDFS_STATE:-/run/buildfs-cibuildwheel.env}
[ -r "$state" ] || die "no $state: run buildfs-before-all.sh first (cibuildwheel before-all)"
BUILDFS_STATE_MODE='' BUILDFS_STATE_MOUNT='' BUILDFS_STATE_STORE='' BUILDFS_STATE_KEY='' BUILDFS_STATE_BIN=''
# shellcheck source=/dev/null
. "$state"
buildfs=$BUILDFS_STATE_BIN
mount_point=$BUILDFS_STATE_MOUNT
store=$BUILDFS_STATE_STORE
key=$BUILDFS_STATE_KEY

if [ "$BUILDFS_STATE_MODE" = mount ]; then
  is_buildfs_mount "$mount_point" || die "$mount_point is no longer mounted; see the daemon log in /run/buildfs/"
  "$buildfs" commit "$mount_point" --key "$key" --store "$store"
else
  "$buildfs" import "$mount_point" --key "$key" --store "$store"
fi

gc_args=${BUILDFS_GC_ARGS:---max-size 10G --max-age 14d --keep 2}
if [ "$gc_args" != none ]; then
  read -r -a gc_list <<< "$gc_args"
  "$buildfs" gc --store "$store" "${gc_list[@]}"
fi

if [ "$unmount" = yes ] && [ "$BUILDFS_STATE_MODE" = mount ]; then
  "$buildfs" umount "$mount_point"
  rm -f "$state"
fi
log "saved $mount_point as '$key' in $store"
