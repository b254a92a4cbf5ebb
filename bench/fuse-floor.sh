#!/usr/bin/env bash
# Why untar and ls -lR stay several times native on any FUSE mount here:
# counts the FUSE requests each workload costs per tree entry (the daemon's
# reads of /dev/fuse, by strace) and times one request round trip (a
# getxattr the daemon must answer), for buildfs and the two peers. Their
# product is the least time FUSE can take, against the native time.
#
#   bench/fuse-floor.sh [--fs LIST]
#
# Environment: BUILDFS (default <repo>/.build/release/buildfs), RESULTS
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
while (( $# )); do
    bench_fs_option "$1" "${2:-}" || { echo "unknown option $1" >&2; exit 2; }
    shift 2
done
bench_check_fs_list
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

# seconds FUNCTION...: wall seconds of one command.
seconds() {
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    echo "$EPOCHREALTIME - $start" | bc
}

# requests PID COMMAND...: runs COMMAND while strace counts the daemon's
# reads of /dev/fuse (one per request the kernel sends).
requests() {
    local pid=$1 fd trace=$WORK_ROOT/strace.out tracer
    shift
    fd=$(find "/proc/$pid/fd" -lname /dev/fuse -printf '%f\n' | head -n 1)
    strace -f -qq -e trace=read -e signal=none -p "$pid" -o "$trace" & tracer=$!
    sleep 1
    "$@" >/dev/null 2>&1
    sleep 0.5
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    grep -c "read($fd," "$trace"
}

# A getxattr of a name nobody set: answered by the daemon every time
# (the kernel caches no xattrs), so its cost is one round trip.
probe() {
    python3 - "$1" "$PROBES" <<'EOF'
import os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
for _ in range(n):
    try: os.getxattr(path, "user.buildfs-probe")
    except OSError: pass
print(f"{(time.perf_counter() - start) / n * 1e6:.1f}")
EOF
}

declare -A untar_s ls_s untar_req ls_req rt_us
for fs in "${FS_LIST[@]}"; do
    dir=$WORK_ROOT/$fs
    bench_fs_open "$fs" "$dir"
    sync
    untar_s[$fs]=$(seconds tar -xf "$TARBALL" -C "$BENCH_FS_DIR")
    ls -lR "$BENCH_FS_DIR" >/dev/null
    ls_s[$fs]=$(seconds ls -lR "$BENCH_FS_DIR")
    touch "$BENCH_FS_DIR/probe"
    rt_us[$fs]=$(probe "$BENCH_FS_DIR/probe")
    if [[ $fs != native ]]; then
        bench_fs_close
        bench_fs_open "$fs" "$dir-counted"  # fresh: deleting would slow ext4 (lib.sh)
        untar_req[$fs]=$(requests "$BENCH_FS_PID" tar -xf "$TARBALL" -C "$BENCH_FS_DIR")
        ls -lR "$BENCH_FS_DIR" >/dev/null
        ls_req[$fs]=$(requests "$BENCH_FS_PID" ls -lR "$BENCH_FS_DIR")
    fi
    cut -d' ' -f1 /proc/loadavg >>"$BENCH_LOAD_LOG"
    bench_fs_close
done

{
    bench_report_header "FUSE request floor: untar and ls -lR" 1 "$WORK_ROOT"
    echo "- tree: $ENTRIES entries ($UNTAR_SOURCES), tar as root (owners, modes, mtimes restored)"
    echo
    echo "| filesystem | untar | requests / entry | ls -lR (2nd) | requests / entry | one round trip | untar floor | ls -lR floor |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for fs in "${FS_LIST[@]}"; do
        if [[ $fs == native ]]; then
            awk -v u="${untar_s[$fs]}" -v l="${ls_s[$fs]}" -v rt="${rt_us[$fs]}" \
                'BEGIN { printf "| native | %.2f s | — | %.3f s | — | %.1f µs (the syscall) | — | — |\n", u, l, rt }'
            continue
        fi
        awk -v fs="$fs" -v u="${untar_s[$fs]}" -v l="${ls_s[$fs]}" -v ur="${untar_req[$fs]}" -v lr="${ls_req[$fs]}" \
            -v rt="${rt_us[$fs]}" -v n="$ENTRIES" -v nu="${untar_s[native]}" -v nl="${ls_s[native]}" 'BEGIN {
            printf "| %s | %.2f s (%.1f×) | %.1f | %.3f s (%.1f×) | %.1f | %.1f µs | %.2f s (%.1f×) | %.3f s (%.1f×) |\n",
                fs, u, u / nu, ur / n, l, l / nl, lr / n, rt, ur * rt / 1e6, ur * rt / 1e6 / nu, lr * rt / 1e6, lr * rt / 1e6 / nl }'
    done
    echo
    echo "Floor = requests × one round trip: the time the requests alone take, before the"
    echo "daemon does any work, assuming the writer never overlaps with them. Ratios are"
    echo "against native. Targets: untar ≤ 1.3×, ls -lR ≤ 1.5×."
    echo
    echo "Method: one run per filesystem, each on a fresh directory. untar and the second"
    echo "\`ls -lR\` are timed without tracing; then the same runs again on a fresh mount with"
    echo "\`strace -f -e trace=read\` on the daemon, counting its reads of /dev/fuse (one per"
    echo "request). The round trip is the mean of $PROBES \`getxattr\` calls of an unset name"
    echo "on one file (the kernel caches no xattrs, so every call reaches the daemon)."
} >"$RESULTS"
bench_bulk_delete "$WORK_ROOT"
cat "$RESULTS"
