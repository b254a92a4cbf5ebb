# shellcheck shell=bash
# Functions shared by the bench/ scripts. Source it; it defines functions and
# a few defaults only, and runs nothing.
#
#   BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   . "$BENCH_DIR/lib.sh"
#
# Callers may set before sourcing (defaults in brackets):
#   BENCH_CACHE_DIR   where downloads are kept [bench/work/cache, git-ignored]
#   ZSTD_SDIST_SPEC   pip requirement of the zstd sdist [zstd==1.5.7.2]
#   SETTLE_SECONDS    see bench_wait_for_settle [360]

_BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_CACHE_DIR=${BENCH_CACHE_DIR:-$_BENCH_LIB_DIR/work/cache}
ZSTD_SDIST_SPEC=${ZSTD_SDIST_SPEC:-zstd==1.5.7.2}
SETTLE_SECONDS=${SETTLE_SECONDS:-360}
# Touched after every bulk deletion by any bench script (see bench_bulk_delete).
BENCH_SETTLE_MARK=$_BENCH_LIB_DIR/work/.last-bulk-delete

# bench_paths NAME: the defaults of a bench script named NAME, kept where
# the caller set them: BUILDFS (the release build), RESULTS
# (bench/results/NAME.md) and WORK_ROOT (bench/work/NAME, git-ignored).
# shellcheck disable=SC2034 # the caller reads them
bench_paths() {
    BUILDFS=${BUILDFS:-$(dirname "$_BENCH_LIB_DIR")/.build/release/buildfs}
    RESULTS=${RESULTS:-$_BENCH_LIB_DIR/results/$1.md}
    WORK_ROOT=${WORK_ROOT:-$_BENCH_LIB_DIR/work/$1}
}

# bench_fetch_zstd_sdist: prints the path of the cached zstd sdist (the
# python-zstd package, which ships zstd's C sources), downloading it with pip
# on first use. PyPI is the only source registry reachable here.
bench_fetch_zstd_sdist() {
    local tarball
    mkdir -p "$BENCH_CACHE_DIR"
    tarball=$(find "$BENCH_CACHE_DIR" -maxdepth 1 -name 'zstd-*.tar.gz' | sort | tail -n 1)
    if [[ -z $tarball ]]; then
        echo "downloading sdist $ZSTD_SDIST_SPEC into $BENCH_CACHE_DIR" >&2
        pip download --quiet --no-deps --no-binary :all: "$ZSTD_SDIST_SPEC" \
            -d "$BENCH_CACHE_DIR" >&2 || return 1
        tarball=$(find "$BENCH_CACHE_DIR" -maxdepth 1 -name 'zstd-*.tar.gz' | sort | tail -n 1)
        [[ -n $tarball ]] || { echo "pip download gave no zstd-*.tar.gz" >&2; return 1; }
    fi
    echo "$tarball"
}

# bench_median FILE: the median of the numbers in FILE, one per line.
bench_median() {
    sort -g "$1" | awk '{ v[NR] = $1 }
        END { if (NR == 0) exit 1
              print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_elapsed START END: seconds between two $EPOCHREALTIME readings (3 decimals).
bench_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# bench_ratio A B: A / B (3 decimals), n/a when B is 0.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f\n", a / b }'; }

# bench_verdict RATIO TARGET: PASS when RATIO <= TARGET, else FAIL (n/a stays n/a).
bench_verdict() {
    awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "n/a"; else print (r + 0 <= t + 0) ? "PASS" : "FAIL" }'
}

# bench_build_tree SIZE OUT: a built C project's tree (make-build-tree.sh)
# at OUT, reused when it is there. SIZE 300 is that tree as it is (~330 MB,
# 8.3k files: the project's build and a toolchain copy); SIZE 1200 adds a
# sysroot under toolchain/sysroot (~1.2 GB in all): the system's
# /usr/lib/TRIPLET (its shared and static libraries) and /usr/lib/python3*,
# the kind of SDK a cross-compiling job caches.
bench_build_tree() {
    local size=$1 out=$2 sysroot=$2/toolchain/sysroot dir
    "$_BENCH_LIB_DIR/make-build-tree.sh" "$out" || return 1
    case $size in
        300) return 0 ;;
        1200) [[ ! -f $out/.bench-sysroot ]] || return 0 ;;
        *) echo "bench_build_tree: size 300 or 1200, not $size" >&2; return 1 ;;
    esac
    rm -rf "$sysroot"
    for dir in "/usr/lib/$(gcc -dumpmachine)" /usr/lib/python3*; do
        [[ -d $dir ]] || continue
        mkdir -p "$sysroot$(dirname "$dir")"
        cp -a "$dir" "$sysroot$(dirname "$dir")/"
    done
    touch "$out/.bench-sysroot"
}

# Deleting many files. This machine's root filesystem is ext4 without a
# journal: for a few minutes after inodes are freed, the inode allocator skips
# them at a cost, so creating files right after a bulk deletion is several
# times slower (an 11.5k-file untar: 1.5 s normally, 4.7 s right after an
# rm -rf of the same tree). A benchmark therefore deletes nothing in bulk while
# it measures, marks every bulk deletion, and waits before timing.
bench_bulk_delete() { rm -rf "$@"; mkdir -p "$(dirname "$BENCH_SETTLE_MARK")"; touch "$BENCH_SETTLE_MARK"; }

# bench_wait_for_settle: sleeps until the last marked bulk deletion (by any
# bench script) is SETTLE_SECONDS old.
bench_wait_for_settle() {
    [[ -f $BENCH_SETTLE_MARK ]] || return 0
    local age
    age=$(( $(date +%s) - $(stat -c %Y "$BENCH_SETTLE_MARK") ))
    if (( age < SETTLE_SECONDS )); then
        echo "waiting $(( SETTLE_SECONDS - age )) s: the last bulk deletion was ${age} s ago" >&2
        sleep $(( SETTLE_SECONDS - age ))
    fi
}

# bench_machine_lines: markdown list items describing this machine.
bench_machine_lines() {
    local dir=${1:-.}
    echo "- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(free -h | awk '/^Mem:/ { print $2 }') memory, kernel $(uname -r)"
    echo "- disk: \`$(df -hT "$dir" | awk 'NR == 2 { print $1, $2, $3 " total,", $5 " free, mounted on", $7 }')\` ($(findmnt -no OPTIONS --target "$dir" 2>/dev/null || echo 'options unknown'))"
}

# bench_fuse_start FS UPPER MOUNTPOINT [BUILDFS_BINARY]: mounts UPPER at
# MOUNTPOINT with FS (buildfs, bindfs or fuse-overlayfs, each with its
# defaults), the daemon running in the foreground as a background job, and
# prints the daemon's pid once the mount is live. fuse-overlayfs gets an
# empty lower dir and its work dir beside UPPER (UPPER.lower, UPPER.work).
bench_fuse_start() {
    local fs=$1 upper=$2 mp=$3 binary=${4:-buildfs} pid i
    mkdir -p "$upper" "$mp"
    case $fs in
        buildfs) "$binary" mount "$mp" --upper "$upper" --foreground >/dev/null 2>&1 & pid=$! ;;
        bindfs) bindfs -f --no-allow-other "$upper" "$mp" >/dev/null 2>&1 & pid=$! ;;
        fuse-overlayfs)
            mkdir -p "$upper.lower" "$upper.work"
            fuse-overlayfs -f -o "lowerdir=$upper.lower,upperdir=$upper,workdir=$upper.work" "$mp" \
                >/dev/null 2>&1 & pid=$! ;;
        *) echo "bench_fuse_start: unknown filesystem $fs" >&2; return 1 ;;
    esac
    for (( i = 0; i < 100; i++ )); do
        if findmnt -rn --mountpoint "$mp" >/dev/null 2>&1; then echo "$pid"; return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench_fuse_start: $fs did not mount $mp" >&2
    kill "$pid" 2>/dev/null
    return 1
}

# bench_fuse_stop MOUNTPOINT PID: unmounts and waits (up to 30 s) for the
# daemon to exit.
bench_fuse_stop() {
    local i
    umount "$1" 2>/dev/null || umount -l "$1"
    for (( i = 0; i < 300; i++ )); do
        kill -0 "$2" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "bench_fuse_stop: daemon $2 still running 30 s after unmounting $1" >&2
    return 1
}

# bench_status_kb PID FIELD: a kB field of /proc/PID/status (VmHWM, VmRSS,
# RssAnon, RssFile), or Threads.
bench_status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# bench_revision: the repository's revision, noting uncommitted changes to
# Sources; BENCH_REVISION instead when set (a binary built from elsewhere,
# e.g. from a `git archive` of a commit while the checkout has other edits).
bench_revision() {
    if [[ -n ${BENCH_REVISION:-} ]]; then echo "$BENCH_REVISION"; return; fi
    local repo=$_BENCH_LIB_DIR/..
    echo "$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- Sources || echo ' + uncommitted changes')"
}

# bench_fs_option OPTION VALUE: the options of every side-by-side script:
# --rounds N, --fs LIST (comma-separated) and --before BINARY, into ROUNDS,
# FS_LIST and BUILDFS_BEFORE. Fails on any other option.
# shellcheck disable=SC2034 # the caller reads ROUNDS
bench_fs_option() {
    case $1 in
        --rounds) ROUNDS=$2 ;;
        --fs) IFS=, read -ra FS_LIST <<<"$2" ;;
        --before) BUILDFS_BEFORE=$(realpath "$2") ;;
        *) return 1 ;;
    esac
}

# bench_check_fs_list: adds buildfs-before to FS_LIST when --before was
# given, and checks that the buildfs binary exists.
bench_check_fs_list() {
    if [[ -n ${BUILDFS_BEFORE:-} ]]; then FS_LIST+=(buildfs-before); fi
    [[ -x $BUILDFS ]] || { echo "no buildfs binary at $BUILDFS (swift build -c release --static-swift-stdlib --product buildfs)" >&2; exit 1; }
}

# One filesystem under test at a time. bench_fs_open FS DIR makes DIR/upper
# reachable through FS: native is the directory itself; buildfs runs
# $BUILDFS, buildfs-before $BUILDFS_BEFORE (an older binary to compare
# with). It sets BENCH_FS_DIR (where to work) and BENCH_FS_PID (the daemon,
# 0 for native). bench_fs_close unmounts it; so does an exit trap.
BENCH_FS_PID=0
bench_fs_open() {
    local fs=$1 dir=$2 kind=$1 binary=${BUILDFS:-buildfs}
    BENCH_FS_PID=0
    if [[ $fs == native ]]; then
        BENCH_FS_DIR=$dir/upper
        mkdir -p "$BENCH_FS_DIR"
        return 0
    fi
    if [[ $fs == buildfs-before ]]; then kind=buildfs binary=$BUILDFS_BEFORE; fi
    BENCH_FS_PID=$(bench_fuse_start "$kind" "$dir/upper" "$dir/mnt" "$binary")
    BENCH_FS_DIR=$dir/mnt
    trap bench_fs_close EXIT
}

bench_fs_close() {
    if (( BENCH_FS_PID != 0 )); then
        bench_fuse_stop "$BENCH_FS_DIR" "$BENCH_FS_PID"
        BENCH_FS_PID=0
    fi
}

# bench_round_robin ROUNDS FUNCTION FS...: calls `FUNCTION FS ROUND` for
# every filesystem in every round, the first one rotating from round to
# round, and appends the 1-min load average after each to BENCH_LOAD_LOG.
bench_round_robin() {
    local rounds=$1 function=$2 round i
    shift 2
    for (( round = 1; round <= rounds; round++ )); do
        for (( i = 0; i < $#; i++ )); do
            local fs=${*:$(( (round - 1 + i) % $# + 1 )):1}
            echo "round $round: $fs" >&2
            "$function" "$fs" "$round"
            cut -d' ' -f1 /proc/loadavg >>"${BENCH_LOAD_LOG:-/dev/null}"
        done
    done
}

# bench_report_header TITLE ROUNDS DIR: the report's title and the lines
# saying when, on what machine and disk (DIR's), with which binaries, and
# how loaded the machine was (BENCH_LOAD_LOG).
bench_report_header() {
    echo "# $1"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC') (end of the run)"
    bench_machine_lines "$3"
    echo "- buildfs: repo revision $(bench_revision), binary \`${BUILDFS:-buildfs}\`"
    if [[ -n ${BUILDFS_BEFORE:-} ]]; then echo "- buildfs-before: binary \`$BUILDFS_BEFORE\`"; fi
    local peers=" ${FS_LIST[*]:-bindfs fuse-overlayfs} "
    if [[ $peers == *" bindfs "* ]] && command -v bindfs >/dev/null; then
        echo "- $(bindfs --version 2>&1 | grep -m 1 '^bindfs')"
    fi
    if [[ $peers == *" fuse-overlayfs "* ]] && command -v fuse-overlayfs >/dev/null; then
        echo "- $(fuse-overlayfs --version 2>&1 | grep -m 1 '^fuse-overlayfs')"
    fi
    echo "- rounds: $2, order rotating; 1-min load average during the run:" \
        "$(sort -g "$BENCH_LOAD_LOG" | head -n 1) to $(sort -g "$BENCH_LOAD_LOG" | tail -n 1)"
}
