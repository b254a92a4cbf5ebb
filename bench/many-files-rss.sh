#!/usr/bin/env bash
# Daemon memory with a big tree: creates N files through a mount
# (make-many-files.py: 100 bytes each, 100 per directory), stats them all,
# reads the daemon's memory and descriptors, then removes the tree through
# the mount: the kernel forgets every inode, and the descriptor count after
# it shows whether the daemon let them go. Every filesystem in one run,
# round robin (the first one rotating), medians over rounds.
#
#   bench/many-files-rss.sh [--files N] [--rounds N] [--fs LIST] [--before BINARY]
#
#   --files N        files in the tree (default 200000)
#   --rounds N       rounds (default 3)
#   --fs LIST        comma-separated, from native,buildfs,bindfs,fuse-overlayfs
#                    (default: all that are installed)
#   --before BINARY  also measure this buildfs binary (e.g. one built from an
#                    older commit), reported as "buildfs-before"
#
# Environment: BUILDFS (default <repo>/.build-release/buildfs, from scripts/build-release), RESULTS
# (default bench/results/many-files-rss.md), WORK_ROOT (scratch, default
# bench/work/many-files-rss, git-ignored, removed at the end).
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

bench_paths many-files-rss
FILES=200000
ROUNDS=3
BUILDFS_BEFORE=
FS_LIST=()

usage() { sed -n '2,/git-ignored/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (( $# >= 2 )); do
    case $1 in
        --files) FILES=$2 ;;
        *) bench_fs_option "$1" "$2" || usage ;;
    esac
    shift 2
done
(( $# == 0 )) || usage
if (( ${#FS_LIST[@]} == 0 )); then
    FS_LIST=(native buildfs)
    command -v bindfs >/dev/null && FS_LIST+=(bindfs)
    command -v fuse-overlayfs >/dev/null && FS_LIST+=(fuse-overlayfs)
fi
bench_check_fs_list

DATA=$WORK_ROOT/data
rm -rf "$WORK_ROOT"
mkdir -p "$DATA"
BENCH_LOAD_LOG=$DATA/load

seconds() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
record() { echo "$3" >>"$DATA/$1.$2"; }   # record NAME FS VALUE

# unit FS ROUND: one filesystem's turn in one round, on a fresh mount.
unit() {
    local fs=$1 dir=$WORK_ROOT/$1-r$2 start made field
    bench_fs_open "$fs" "$dir"
    local target=$BENCH_FS_DIR pid=$BENCH_FS_PID
    sync
    start=$EPOCHREALTIME
    made=$(python3 "$BENCH_DIR/make-many-files.py" "$target/m" "$FILES")
    record create "$fs" "$(seconds "$start")"
    [[ $made == "$FILES" ]] || { echo "$fs: created $made of $FILES files" >&2; return 1; }
    start=$EPOCHREALTIME
    made=$(find "$target/m" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { print n + 0, s + 0 }')
    record walk "$fs" "$(seconds "$start")"
    [[ $made == "$FILES $(( FILES * 100 ))" ]] || { echo "$fs: walk found $made" >&2; return 1; }
    if (( pid != 0 )); then
        for field in VmHWM VmRSS RssAnon RssFile Threads; do record "$field" "$fs" "$(bench_status_kb "$pid" "$field")"; done
        record fds "$fs" "$(find "/proc/$pid/fd" -mindepth 1 | wc -l)"
    fi
    start=$EPOCHREALTIME
    rm -rf "$target/m"
    record rm "$fs" "$(seconds "$start")"
    if (( pid != 0 )); then record fds_after_rm "$fs" "$(find "/proc/$pid/fd" -mindepth 1 | wc -l)"; fi
    bench_fs_close
    bench_bulk_delete "$dir"
}

echo "filesystems: ${FS_LIST[*]}; $FILES files; $ROUNDS rounds" >&2
bench_round_robin "$ROUNDS" unit "${FS_LIST[@]}"

# ----------------------------------------------------------------- report ---

med() { [[ -s $DATA/$1.$2 ]] && bench_median "$DATA/$1.$2" || echo ""; }
mb() { local v; v=$(med "$1" "$2"); [[ -n $v ]] && awk -v k="$v" 'BEGIN { printf "%.1f MiB", k / 1024 }' || echo "—"; }
secs() { local v; v=$(med "$1" "$2"); [[ -n $v ]] && printf '%.2f s' "$v" || echo "—"; }
raw() { if [[ -s $DATA/$1.$2 ]]; then tr '\n' ' ' <"$DATA/$1.$2"; fi; }

{
    bench_report_header "Daemon memory after $FILES files" "$ROUNDS" "$WORK_ROOT"
    echo
    echo "Method: \`bench/many-files-rss.sh\`. On a fresh mount of an empty directory,"
    echo "\`make-many-files.py\` creates $FILES files of 100 bytes (100 per directory, each closed"
    echo "before the next is opened), \`find -type f -printf %s\` stats them all (counts and sizes"
    echo "checked), then the daemon's /proc/PID/status is read: VmHWM is the peak resident set"
    echo "since the daemon started (the target is < 50 MB; shown in MiB, 1024 kB of /proc), RssFile the part that is mapped"
    echo "program and library code. Then \`rm -rf\` removes the tree through the mount, which"
    echo "makes the kernel forget every inode: the open descriptors after it show whether the"
    echo "daemon released them. Times are wall clock; each round deletes its tree, and ext4 here"
    echo "creates files more slowly for minutes after a bulk deletion (lib.sh), so they are"
    echo "information only."
    echo
    echo "## Results (medians)"
    echo
    echo "| filesystem | VmHWM | VmRSS | of it RssAnon | of it RssFile | threads | open fds | create | stat walk | rm -rf | open fds after rm -rf |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for fs in "${FS_LIST[@]}"; do
        echo "| $fs | $(mb VmHWM "$fs") | $(mb VmRSS "$fs") | $(mb RssAnon "$fs") | $(mb RssFile "$fs") | $(med Threads "$fs") | $(med fds "$fs") | $(secs create "$fs") | $(secs walk "$fs") | $(secs rm "$fs") | $(med fds_after_rm "$fs") |"
    done
    echo
    echo "## Every round (run order)"
    echo
    echo "| filesystem | VmHWM kB | create s | walk s | rm -rf s |"
    echo "| --- | --- | --- | --- | --- |"
    for fs in "${FS_LIST[@]}"; do
        echo "| $fs | $(raw VmHWM "$fs") | $(raw create "$fs") | $(raw walk "$fs") | $(raw rm "$fs") |"
    done
} >"$RESULTS"
echo "report: $RESULTS" >&2
rm -rf "$WORK_ROOT"
