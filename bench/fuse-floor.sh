#!/usr/bin/env bash
# Why untar, find and ls -lR stay several times native on any FUSE mount
# here: counts the FUSE requests each workload costs per tree entry (the
# daemon's reads of /dev/fuse, by strace) and times one request round trip
# (a getxattr the daemon must answer), for buildfs and the two peers. Their
# product is the least time FUSE can take, against the native time.
#
#   bench/fuse-floor.sh [--fs LIST] [--rounds N]
#
# Environment: BUILDFS (default <repo>/.build-release/buildfs, from scripts/build-release), RESULTS
# (default bench/results/fuse-floor.md), WORK_ROOT (bench/work/fuse-floor),
# UNTAR_SOURCES (default: /usr/include /usr/share/perl /usr/share/zoneinfo),
# PROBES (getxattr calls timed, default 20000).
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
bench_paths fuse-floor
UNTAR_SOURCES=${UNTAR_SOURCES:-/usr/include /usr/share/perl /usr/share/zoneinfo}
PROBES=${PROBES:-20000}
FS_LIST=(native buildfs bindfs fuse-overlayfs)
ROUNDS=3
while (( $# )); do
    bench_fs_option "$1" "${2:-}" || { echo "unknown option $1" >&2; exit 2; }
    shift 2
done
bench_check_fs_list
# Every ratio is against native: it is always measured.
[[ " ${FS_LIST[*]} " == *" native "* ]] || FS_LIST=(native "${FS_LIST[@]}")
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 1; }

if [[ -e $WORK_ROOT ]]; then bench_bulk_delete "$WORK_ROOT"; fi
mkdir -p "$WORK_ROOT"
BENCH_LOAD_LOG=$WORK_ROOT/load
: >"$BENCH_LOAD_LOG"
TARBALL=$WORK_ROOT/tree.tar
read -ra sources <<<"$UNTAR_SOURCES"
tar -cf "$TARBALL" -C / "${sources[@]#/}" 2>/dev/null
ENTRIES=$(tar -tf "$TARBALL" | wc -l)
bench_wait_for_settle

# seconds COMMAND...: wall seconds of one command.
seconds() {
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    echo "$EPOCHREALTIME - $start" | bc
}

# requests PID COMMAND...: runs COMMAND while strace counts the daemon's
# reads of /dev/fuse (one per request the kernel sends), on every descriptor
# it has open on it (buildfs's loop threads each read their own).
requests() {
    local pid=$1 fds trace=$WORK_ROOT/strace.out tracer
    shift
    fds=$(find "/proc/$pid/fd" -lname /dev/fuse -printf '%f\n' | paste -sd '|')
    strace -f -qq -e trace=read -e signal=none -p "$pid" -o "$trace" & tracer=$!
    sleep 1
    "$@" >/dev/null 2>&1
    sleep 0.5
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    grep -cE "read\(($fds)," "$trace" || true
}

# A getxattr of a name nobody set: answered by the daemon every time
# (the kernel caches no xattrs), so its cost is one round trip.
# probe PATH [CPU]: the prober pinned to CPU if given.
probe() {
    local pin=()
    [[ -n ${2:-} ]] && pin=(taskset -c "$2")
    "${pin[@]}" python3 - "$1" "$PROBES" <<'EOF'
import os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
for _ in range(n):
    try: os.getxattr(path, "user.buildfs-probe")
    except OSError: pass
print(f"{(time.perf_counter() - start) / n * 1e6:.1f}")
EOF
}

# One timed round of FS: a fresh tree untarred, then the second find and
# ls -lR of it (the first fills the kernel's caches), and the round trip.
TIMES=$WORK_ROOT/times
mkdir -p "$TIMES"
time_round() {
    local fs=$1 round=$2
    bench_fs_open "$fs" "$WORK_ROOT/$fs-$round"
    sync
    seconds tar -xf "$TARBALL" -C "$BENCH_FS_DIR" >>"$TIMES/$fs.untar"
    find "$BENCH_FS_DIR" >/dev/null
    seconds find "$BENCH_FS_DIR" >>"$TIMES/$fs.find"
    ls -lR "$BENCH_FS_DIR" >/dev/null
    seconds ls -lR "$BENCH_FS_DIR" >>"$TIMES/$fs.ls"
    touch "$BENCH_FS_DIR/probe"
    probe "$BENCH_FS_DIR/probe" >>"$TIMES/$fs.rt"
    # The round trip again with every daemon thread on CPU 0 and the
    # prober on CPU 0, then on CPU 1: what the wakeup across CPUs costs.
    if (( BENCH_FS_PID != 0 && $(nproc) > 1 )); then
        taskset -a -p -c 0 "$BENCH_FS_PID" >/dev/null
        probe "$BENCH_FS_DIR/probe" 0 >>"$TIMES/$fs.rt-same"
        probe "$BENCH_FS_DIR/probe" 1 >>"$TIMES/$fs.rt-other"
        taskset -a -p -c "0-$(( $(nproc) - 1 ))" "$BENCH_FS_PID" >/dev/null
    fi
    bench_fs_close
}
bench_round_robin "$ROUNDS" time_round "${FS_LIST[@]}"

# The same workloads once more per FUSE file system, traced, on a fresh
# tree (deleting one would slow ext4, see lib.sh). buildfs serves them over
# /dev/fuse here, where strace sees each request as a read: over io_uring
# (its default) the kernel sends the same requests, in ring entries.
declare -A untar_req find_req ls_req
for fs in "${FS_LIST[@]}"; do
    [[ $fs == native ]] && continue
    export BUILDFS_FUSE_IO_URING=0
    bench_fs_open "$fs" "$WORK_ROOT/$fs-counted"
    unset BUILDFS_FUSE_IO_URING
    untar_req[$fs]=$(requests "$BENCH_FS_PID" tar -xf "$TARBALL" -C "$BENCH_FS_DIR")
    find "$BENCH_FS_DIR" >/dev/null
    find_req[$fs]=$(requests "$BENCH_FS_PID" find "$BENCH_FS_DIR")
    ls -lR "$BENCH_FS_DIR" >/dev/null
    ls_req[$fs]=$(requests "$BENCH_FS_PID" ls -lR "$BENCH_FS_DIR")
    bench_fs_close
done

median() { bench_median "$TIMES/$1.$2"; }

{
    bench_report_header "FUSE request floor: untar, find and ls -lR" "$ROUNDS" "$WORK_ROOT"
    echo "- tree: $ENTRIES entries ($UNTAR_SOURCES), tar as root (owners, modes, mtimes restored)"
    echo
    echo "Medians of the rounds; in parentheses the ratio to native, then requests per tree entry."
    echo "Floor = requests × one round trip, the time the requests alone take (ratio to native)."
    echo
    echo "| filesystem | one round trip | untar | untar floor | find (2nd) | find floor | ls -lR (2nd) | ls -lR floor |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    nu=$(median native untar) nf=$(median native find) nl=$(median native ls)
    awk -v u="$nu" -v f="$nf" -v l="$nl" -v rt="$(median native rt)" 'BEGIN {
        printf "| native | %.1f µs (the syscall) | %.2f s | — | %.3f s | — | %.3f s | — |\n", rt, u, f, l }'
    for fs in "${FS_LIST[@]}"; do
        [[ $fs == native ]] && continue
        awk -v fs="$fs" -v n="$ENTRIES" -v rt="$(median "$fs" rt)" \
            -v u="$(median "$fs" untar)" -v ur="${untar_req[$fs]}" -v nu="$nu" \
            -v f="$(median "$fs" find)" -v fr="${find_req[$fs]}" -v nf="$nf" \
            -v l="$(median "$fs" ls)" -v lr="${ls_req[$fs]}" -v nl="$nl" '
            function cell(t, r, base) { return sprintf("%.3f s (%.1f×, %.1f req)", t, t / base, r / n) }
            function floor(r, base) { return sprintf("%.3f s (%.1f×)", r * rt / 1e6, r * rt / 1e6 / base) }
            BEGIN { printf "| %s | %.1f µs | %s | %s | %s | %s | %s | %s |\n", fs, rt,
                cell(u, ur, nu), floor(ur, nu), cell(f, fr, nf), floor(fr, nf), cell(l, lr, nl), floor(lr, nl) }'
    done
    echo
    if [[ -s $TIMES/buildfs.rt-same ]]; then
        echo
        echo "One round trip by where the daemon and the caller run (medians, µs): every daemon"
        echo "thread pinned to CPU 0 (taskset), the prober on CPU 0 (same) or CPU 1 (other)."
        echo
        echo "| filesystem | unpinned | same CPU | other CPU |"
        echo "| --- | ---: | ---: | ---: |"
        for fs in "${FS_LIST[@]}"; do
            [[ -s $TIMES/$fs.rt-same ]] || continue
            echo "| $fs | $(median "$fs" rt) | $(median "$fs" rt-same) | $(median "$fs" rt-other) |"
        done
    fi
    echo
    echo "Targets: untar ≤ 1.3×, find and ls -lR ≤ 1.5×. The floor assumes the program never"
    echo "overlaps its work with a request; the daemon's own work comes on top."
    echo
    echo "Method: $ROUNDS rounds, every filesystem once per round on a fresh directory, the first"
    echo "one rotating. Timed: untar, then \`find\` and \`ls -lR\` each run once untimed and"
    echo "then timed (the second run is the number). Then, once per FUSE filesystem on another"
    echo "fresh mount, the same runs with \`strace -f -e trace=read\` on the daemon, counting its"
    echo "reads of /dev/fuse (one per request; buildfs serves that mount over /dev/fuse, as strace
sees no io_uring request, and the kernel sends the same ones). The round trip is the mean of $PROBES \`getxattr\`"
    echo "calls of an unset name on one file (the kernel caches no xattrs, so every call reaches"
    echo "the daemon); its median over the rounds is shown."
    echo
    echo "Every round (seconds, in run order):"
    echo
    for fs in "${FS_LIST[@]}"; do
        for w in untar find ls; do echo "- $fs $w: $(tr '\n' ' ' <"$TIMES/$fs.$w")"; done
    done
} >"$RESULTS"
bench_bulk_delete "$WORK_ROOT"
cat "$RESULTS"
