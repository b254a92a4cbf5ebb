#!/usr/bin/env bash
# Sequential I/O through a mount against the plain directory, alternating:
# `dd if=/dev/zero of=F bs=1M count=N` (timed until dd exits, no fsync), then
# `dd if=F of=/dev/null bs=1M` twice: the first read, and the re-read (the
# number for the target, whatever the kernel kept cached). Every round runs
# each filesystem once, the first one rotating; medians over rounds.
#
#   bench/sequential-io.sh [--rounds N] [--mib N] [--fs LIST] [--before BINARY]
#
#   --rounds N       rounds (default 5)
#   --mib N          file size in MiB (default 1024)
#   --fs LIST        comma-separated, from native,buildfs,bindfs,fuse-overlayfs
#                    (default: native,buildfs)
#   --before BINARY  also measure this buildfs binary (e.g. one built from an
#                    older commit), reported as "buildfs-before"
#
# Environment: BUILDFS (default <repo>/.build-release/buildfs, from scripts/build-release), RESULTS
# (default bench/results/sequential-io.md), WORK_ROOT (scratch, default
# bench/work/sequential-io, git-ignored, removed at the end).
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

bench_paths sequential-io
ROUNDS=5
MIB=1024
BUILDFS_BEFORE=
FS_LIST=(native buildfs)

usage() { sed -n '2,/git-ignored/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (( $# >= 2 )); do
    case $1 in
        --mib) MIB=$2 ;;
        *) bench_fs_option "$1" "$2" || usage ;;
    esac
    shift 2
done
(( $# == 0 )) || usage
bench_check_fs_list

DATA=$WORK_ROOT/data
rm -rf "$WORK_ROOT"
mkdir -p "$DATA"
BENCH_LOAD_LOG=$DATA/load

record() { echo "$3" >>"$DATA/$1.$2"; }   # record NAME FS VALUE
# rate CMD...: runs CMD and prints MB/s for MIB MiB.
rate() {
    local start=$EPOCHREALTIME
    "$@" 2>/dev/null
    awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$MIB" 'BEGIN { printf "%.0f", n * 1048576 / (b - a) / 1e6 }'
}

# unit FS ROUND: one filesystem's turn in one round, on a fresh mount.
unit() {
    local fs=$1 dir=$WORK_ROOT/$1-r$2
    bench_fs_open "$fs" "$dir"
    local file=$BENCH_FS_DIR/F
    sync
    record write "$fs" "$(rate dd if=/dev/zero of="$file" bs=1M count="$MIB")"
    [[ $(stat -c %s "$file") == $(( MIB * 1048576 )) ]] || { echo "$fs: short file" >&2; return 1; }
    record read1 "$fs" "$(rate dd if="$file" of=/dev/null bs=1M)"
    record reread "$fs" "$(rate dd if="$file" of=/dev/null bs=1M)"
    bench_fs_close
    rm -rf "$dir"
}

echo "filesystems: ${FS_LIST[*]}; $MIB MiB; $ROUNDS rounds" >&2
bench_round_robin "$ROUNDS" unit "${FS_LIST[@]}"

# ----------------------------------------------------------------- report ---

med() { bench_median "$DATA/$1.$2"; }
ratio() { awk -v a="$(med "$1" "$2")" -v b="$(med "$1" native)" 'BEGIN { printf "%.2f×", a / b }'; }

{
    bench_report_header "Sequential I/O, $MIB MiB" "$ROUNDS" "$WORK_ROOT"
    echo
    echo "Method: \`bench/sequential-io.sh\`. Each filesystem in each round gets a fresh mount"
    echo "of an empty directory; \`sync\` (untimed), then \`dd if=/dev/zero of=F bs=1M count=$MIB\`"
    echo "timed until dd exits (no fsync: every byte is then in the backing ext4's page cache,"
    echo "for the mounts too, since close() waits for them), then \`dd if=F of=/dev/null bs=1M\`"
    echo "twice: the first read and the re-read. Throughput in MB/s; ratios are medians over"
    echo "native's median (targets: write ≥ 0.7×, re-read ≥ 0.8×)."
    echo
    echo "## Results (medians, MB/s)"
    echo
    echo "| filesystem | write | first read | re-read | write ratio | first-read ratio | re-read ratio |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for fs in "${FS_LIST[@]}"; do
        echo "| $fs | $(med write "$fs") | $(med read1 "$fs") | $(med reread "$fs") | $(ratio write "$fs") | $(ratio read1 "$fs") | $(ratio reread "$fs") |"
    done
    echo
    echo "## Every round (run order, MB/s)"
    echo
    echo "| filesystem | write | first read | re-read |"
    echo "| --- | --- | --- | --- |"
    for fs in "${FS_LIST[@]}"; do
        echo "| $fs | $(tr '\n' ' ' <"$DATA/write.$fs") | $(tr '\n' ' ' <"$DATA/read1.$fs") | $(tr '\n' ' ' <"$DATA/reread.$fs") |"
    done
} >"$RESULTS"
echo "report: $RESULTS" >&2
rm -rf "$WORK_ROOT"
