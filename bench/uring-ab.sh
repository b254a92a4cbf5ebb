#!/usr/bin/env bash
# A/B of buildfs's two FUSE transports, one release binary: the loop on
# /dev/fuse ("dev", BUILDFS_FUSE_IO_URING=0) against FUSE over io_uring
# ("uring", BUILDFS_FUSE_IO_URING=1, which turns the fuse module's
# enable_uring on; the default where the kernel offers it),
# alternating which goes first every round, a fresh mount each time.
#
#   bench/uring-ab.sh [ROUNDS]        (default 5)
#
# Workloads per mount: untar of /usr/include + /usr/share/perl +
# /usr/share/zoneinfo (tar -xf of a tarball in the page cache); 2nd `find`
# and 2nd `ls -lR` of that tree; FILES (20000) small files created by a shell
# loop; `make -j2`-like stats: every file of the tree stat'ed by two
# processes at once (xargs -P2), 2nd run timed.
#
# Trees stay until the end (creating files right after a bulk deletion is
# slow on this disk, see lib.sh), then go in one marked bulk deletion.
# Environment: BUILDFS (default <repo>/.build-release/buildfs), RESULTS
# (bench/results/uring.md: the table, printed and written there; add the
# reading by hand),
# WORK_ROOT (bench/work/uring), FILES, SETTLE_SECONDS (lib.sh).
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/lib.sh"
bench_paths uring
ROUNDS=${1:-5}
FILES=${FILES:-20000}
[[ -x $BUILDFS ]] || { echo "no buildfs binary at $BUILDFS (scripts/build-release)" >&2; exit 1; }

mkdir -p "$WORK_ROOT"
data=$WORK_ROOT-data.txt
: >"$data"
tarball=$WORK_ROOT/src.tar
# tar says 1 when a file changed while read: the tarball is still whole.
[[ -s $tarball ]] || tar -cf "$tarball" -C / usr/include usr/share/perl usr/share/zoneinfo 2>/dev/null || [[ $? == 1 ]]
cat "$tarball" >/dev/null
bench_wait_for_settle

# timed CMD...: seconds CMD took (its output discarded).
timed() {
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    bench_elapsed "$start" "$EPOCHREALTIME"
}

# (A subshell: the mount must not stay anyone's working directory.)
create_files() ( cd "$1" && mkdir many && for ((i = 0; i < $2; i++)); do echo "$i" >"many/f$i"; done )
parallel_stats() { find "$1" -type f -print0 | xargs -0 -P 2 -n 500 stat --format=%s >/dev/null; }

# run MODE ROUND: one mount, every workload, one "MODE WORKLOAD SECONDS" line each.
run() {
    local mode=$1 dir=$WORK_ROOT/$1-$2 log transport
    local -a env=(BUILDFS_FUSE_IO_URING=0)
    [[ $mode == uring ]] && env=(BUILDFS_FUSE_IO_URING=1)
    mkdir -p "$dir/upper" "$dir/mnt"
    env "${env[@]}" "$BUILDFS" mount "$dir/mnt" --upper "$dir/upper" >/dev/null
    transport=$("$BUILDFS" stats "$dir/mnt" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["mount"]["transport"])' || echo unknown)
    case $mode:$transport in
        uring:*io_uring*|dev:*) ;;
        *) echo "round $2: $mode mount is not on io_uring: $transport" >&2; exit 1 ;;
    esac
    [[ $2 == 1 ]] && echo "$mode transport: $transport" >&2
    sync
    echo "$mode untar $(timed tar -xf "$tarball" -C "$dir/mnt")"
    sync
    find "$dir/mnt" >/dev/null
    echo "$mode find $(timed find "$dir/mnt")"
    ls -lR "$dir/mnt" >/dev/null
    echo "$mode ls $(timed ls -lR "$dir/mnt")"
    parallel_stats "$dir/mnt/usr"
    echo "$mode pstat $(timed parallel_stats "$dir/mnt/usr")"
    sync
    echo "$mode create $(timed create_files "$dir/mnt" "$FILES")"
    [[ $(find "$dir/mnt/many" -type f | wc -l) == "$FILES" ]] || { echo "round $2: $mode created the wrong number of files" >&2; exit 1; }
    "$BUILDFS" umount "$dir/mnt" >/dev/null
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=(dev uring); else order=(uring dev); fi
    for mode in "${order[@]}"; do run "$mode" "$round" | tee -a "$data"; done
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >>"$data"
done
for mode in dev uring; do bench_bulk_delete "$WORK_ROOT/$mode"-*; done

median() { awk -v m="$1" -v w="$2" '$1 == m && $2 == w { print $3 }' "$data" >"$WORK_ROOT/values"; bench_median "$WORK_ROOT/values"; }
{
    echo "# FUSE over io_uring against /dev/fuse"
    echo
    echo "- date: $started, $ROUNDS rounds, alternating which transport goes first"
    bench_machine_lines "$WORK_ROOT"
    echo "- $(bench_binary_line "$BUILDFS"), revision $(bench_revision)"
    echo "- 1-min load average after each round: $(awk '$1 == "load" { printf "%s ", $2 }' "$data")"
    echo
    echo "| workload | /dev/fuse median (s) | io_uring median (s) | io_uring / dev |"
    echo "|---|---|---|---|"
    for workload in untar find ls pstat create; do
        dev=$(median dev "$workload")
        uring=$(median uring "$workload")
        echo "| $workload | $dev | $uring | $(bench_ratio "$uring" "$dev") |"
    done
    echo
    echo "Per round (seconds):"
    echo
    echo '```'
    grep -v '^load' "$data"
    echo '```'
} | tee "$RESULTS"
