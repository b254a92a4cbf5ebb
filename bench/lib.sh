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
    BUILDFS=${BUILDFS:-$(dirname "$_BENCH_LIB_DIR")/.build-release/buildfs}
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
# bench script) is SETTLE_SECONDS old. In short sleeps: on this shared
# machine a stray kill of one `sleep` must not end the run.
bench_wait_for_settle() {
    local age said=0
    while [[ -f $BENCH_SETTLE_MARK ]]; do
        age=$(( $(date +%s) - $(stat -c %Y "$BENCH_SETTLE_MARK") ))
        (( age < SETTLE_SECONDS )) || return 0
        (( said++ )) || echo "waiting $(( SETTLE_SECONDS - age )) s: the last bulk deletion was ${age} s ago" >&2
        sleep $(( SETTLE_SECONDS - age < 10 ? SETTLE_SECONDS - age : 10 )) || true
    done
}

# bench_machine_lines: markdown list items describing this machine.
bench_machine_lines() {
    local dir=${1:-.}
    echo "- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(free -h | awk '/^Mem:/ { print $2 }') memory, kernel $(uname -r)"
    echo "- disk: \`$(df -hT "$dir" | awk 'NR == 2 { print $1, $2, $3 " total,", $5 " free, mounted on", $7 }')\` ($(findmnt -no OPTIONS --target "$dir" 2>/dev/null || echo 'options unknown'))"
}

# bench_binary_line BIN: how the report names the binary under test: its
# path, whether it is statically linked, when it was built, its sha256.
bench_binary_line() {
    local linking="linking unknown"
    if readelf -d "$1" >/dev/null 2>&1; then
        if readelf -d "$1" | grep -q '(NEEDED)'; then linking="dynamically linked"; else linking="statically linked"; fi
    fi
    echo "binary \`$1\` ($linking) of $(date -u -r "$1" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$1" | cut -c1-12)"
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

# bench_fuse_stop MOUNTPOINT PID [BUILDFS_BINARY]: unmounts (with
# `BUILDFS_BINARY umount` when given, as a daemonized buildfs mount is ended;
# lazily if that fails) and waits (up to 30 s) for the daemon PID to exit
# (PID 0: no daemon known).
bench_fuse_stop() {
    local i
    if [[ -n ${3:-} ]] && "$3" umount "$1" >/dev/null 2>&1; then :
    elif ! umount "$1" 2>/dev/null; then umount -l "$1"; fi
    (( ${2:-0} != 0 )) || return 0
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
    [[ -x $BUILDFS ]] || { echo "no buildfs binary at $BUILDFS (scripts/build-release prints its path; BUILDFS=that path)" >&2; exit 1; }
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
# round, and samples the machine's load after each (bench_sample_load).
bench_round_robin() {
    local rounds=$1 function=$2 round i
    shift 2
    for (( round = 1; round <= rounds; round++ )); do
        for (( i = 0; i < $#; i++ )); do
            local fs=${*:$(( (round - 1 + i) % $# + 1 )):1}
            echo "round $round: $fs" >&2
            "$function" "$fs" "$round"
            bench_sample_load
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
        "$(cut -d' ' -f1 "$BENCH_LOAD_LOG" | sort -g | head -n 1) to $(cut -d' ' -f1 "$BENCH_LOAD_LOG" | sort -g | tail -n 1)"
}

# bench_sample_load: appends the 1-min load average and how many compilers
# (of other jobs: swift-frontend, cc1, clang, ...) are running to
# BENCH_LOAD_LOG, as "LOAD COMPILERS".
bench_sample_load() {
    local busy
    busy=$(cat /proc/[0-9]*/comm 2>/dev/null \
        | grep -cxE 'swift-frontend|swift-build|swiftc|swift-driver|cc1|cc1plus|clang(-[0-9]+)?' || true)
    echo "$(cut -d' ' -f1 /proc/loadavg) ${busy:-0}" >>"${BENCH_LOAD_LOG:-/dev/null}"
}

# bench_load_line WHAT: the report line on BENCH_LOAD_LOG's samples (taken
# once per WHAT), with a warning when the median load says the numbers are noisy.
bench_load_line() {
    local line
    line=$(sort -g "$BENCH_LOAD_LOG" 2>/dev/null | awk -v what="$1" '{ l[NR] = $1; if ($2 > 0) busy++ }
        END { if (NR == 0) exit
              m = l[int((NR + 1) / 2)]
              printf "1-min load average min %s / median %s / max %s over %d samples (one per %s); another compile (swift-frontend, cc1, clang, ...) was running at %d of them", l[1], m, l[NR], NR, what, busy + 0
              if (m > 3) printf ". **Busy machine** (2 cores; the benchmark itself adds 1 to 2): expect noisy numbers, wall times worst" }' || true)
    echo "- machine load during the run: ${line:-not sampled}"
}

# ------------------------------- runs measured in units (mount.sh and kin) --
# A run keeps one file per measurement in DATA ("ROUND VALUE" lines, VALUE
# "fail" for a failed round), every command's output in LOG, and its live
# mounts in BENCH_MOUNTS; each unit (one filesystem's or one side's turn in
# one round) runs in a subshell (bench_unit). The caller sets LOG, DATA,
# WORK_ROOT, RESULTS, BENCH_LOAD_LOG and BENCH_MOUNTS, and defines
# `write_report STATUS` (the report on stdout).

bench_log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$LOG" >&2; }

# bench_record NAME ROUND VALUE: one round's value of the measurement NAME.
bench_record() { echo "$2 $3" >>"$DATA/$1"; }

# bench_cpu_seconds PID: user+system seconds of all PID's threads so far (0
# for PID 0 or a process that is gone).
bench_cpu_seconds() {
    local stat
    if (( $1 == 0 )) || ! stat=$(cat "/proc/$1/stat" 2>/dev/null); then echo 0; return; fi
    stat=${stat##*) }   # drop "pid (comm) ", comm may hold spaces
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / tck }' <<<"$stat"
}

# bench_measure NAME ROUND PID CMD...: runs CMD once and records its wall
# seconds as NAME; the CPU seconds the filesystem daemon PID (0: none) spent
# meanwhile as NAME.cpu; and those plus CMD's own user+system CPU, children
# included, as NAME.tcpu (on a busy machine CPU time varies far less than
# wall time). `sync` first, outside the timed region. CMD's stdout is left in
# BENCH_OUT, its stderr in BENCH_OUT.err, both then appended to LOG. A
# failure is recorded as "fail" and returned.
bench_measure() {
    local name=$1 round=$2 pid=$3 cpu0 start secs rc=0 dcpu=0 TIMEFORMAT='%U %S'
    shift 3
    sync
    : >>"$DATA/.measured"
    echo "+ [$name r$round] $*" >>"$LOG"
    cpu0=$(bench_cpu_seconds "$pid")
    start=$EPOCHREALTIME
    { time "$@" >"$BENCH_OUT" 2>"$BENCH_OUT.err"; } 2>"$BENCH_OUT.cpu" || rc=$?
    secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')
    cat "$BENCH_OUT" "$BENCH_OUT.err" >>"$LOG"
    if (( rc != 0 )); then
        bench_record "$name" "$round" fail
        bench_log "$name (round $round) FAILED with exit code $rc after $secs s (see $LOG)"
        return "$rc"
    fi
    bench_record "$name" "$round" "$secs"
    if (( pid != 0 )); then
        dcpu=$(awk -v a="$cpu0" -v b="$(bench_cpu_seconds "$pid")" 'BEGIN { printf "%.2f", b - a }')
        bench_record "$name.cpu" "$round" "$dcpu"
    fi
    bench_record "$name.tcpu" "$round" "$(awk -v d="$dcpu" '{ printf "%.2f", $1 + $2 + d }' "$BENCH_OUT.cpu")"
    echo "  $secs s" >>"$LOG"
}

# bench_unit "NAMES" FUNCTION ARGS...: `FUNCTION ARGS...` (one unit; its
# round is the last argument) in a subshell under `set -e`. If it fails,
# every measurement in NAMES that it did not record for that round is
# recorded as failed, the failure is noted in DATA/unit_failures,
# BENCH_ON_UNIT_FAILURE (if set) is called with FUNCTION ARGS..., and every
# mount left is taken down: the run goes on.
bench_unit() {
    local names=$1 round=${*: -1} rc name
    shift
    set +e
    ( set -e; "$@" )
    rc=$?
    set -e
    (( rc != 0 )) || return 0
    bench_log "$* failed with exit code $rc"
    echo "$1 round $round: exit code $rc; last log line: $(grep -v '^\[' "$LOG" | tail -n 1)" >>"$DATA/unit_failures"
    for name in $names; do
        grep -qs "^$round " "$DATA/$name" || bench_record "$name" "$round" fail
    done
    if [[ -n ${BENCH_ON_UNIT_FAILURE:-} ]]; then "$BENCH_ON_UNIT_FAILURE" "$@" || true; fi
    bench_unmount_all || true
}

# bench_mount_pid MOUNTPOINT: the daemon serving a FUSE mount: the process
# holding /dev/fuse with MOUNTPOINT (or its real path) among its arguments,
# alone or after '=' or ','; 0 when there is none.
bench_mount_pid() {
    local mp=$1 real p a fd
    local -a args
    real=$(realpath -m "$mp")
    for p in /proc/[0-9]*; do
        mapfile -d '' args <"$p/cmdline" 2>/dev/null || continue
        for a in "${args[@]}"; do
            [[ $a == "$mp" || $a == "$real" || $a == *[=,]"$mp" || $a == *[=,]"$real" ]] || continue
            for fd in "$p"/fd/*; do
                if [[ $(readlink "$fd" 2>/dev/null) == /dev/fuse ]]; then echo "${p#/proc/}"; return 0; fi
            done
            break
        done
    done 2>/dev/null
    echo 0
}

# bench_mount_add MOUNTPOINT PID [BUILDFS_BINARY]: notes a mount (PID 0:
# looked up when unmounting) in BENCH_MOUNTS; with BUILDFS_BINARY it is
# ended by `BUILDFS_BINARY umount`.
bench_mount_add() { echo "$1 $2 ${3:-}" >>"$BENCH_MOUNTS"; }

# bench_unmount MOUNTPOINT: unmounts a mount of BENCH_MOUNTS (bench_fuse_stop)
# if it is mounted, and forgets it.
bench_unmount() {
    local mp=$1 pid=0 binary=""
    read -r _ pid binary < <(awk -v m="$mp" '$1 == m' "$BENCH_MOUNTS") || true
    if findmnt -rn --mountpoint "$mp" >/dev/null 2>&1; then
        (( ${pid:-0} != 0 )) || pid=$(bench_mount_pid "$mp")
        bench_fuse_stop "$mp" "$pid" "$binary" 2>&1 | tee -a "$LOG" >&2 || true
    fi
    awk -v m="$mp" '$1 != m' "$BENCH_MOUNTS" >"$BENCH_MOUNTS.tmp" && mv "$BENCH_MOUNTS.tmp" "$BENCH_MOUNTS"
}

bench_unmount_all() {
    local mp
    [[ -f $BENCH_MOUNTS ]] || return 0
    while read -r mp _; do bench_unmount "$mp"; done < <(cat "$BENCH_MOUNTS")
}

# bench_med NAME: the median of NAME's successful rounds, or nothing.
bench_med() {
    [[ -f $DATA/$1 ]] || return 0
    awk '$2 != "fail" { print $2 }' "$DATA/$1" | bench_median /dev/stdin 2>/dev/null || true
}

# bench_fails NAME: how many of NAME's rounds failed.
bench_fails() {
    [[ -f $DATA/$1 ]] || { echo 0; return; }
    awk '$2 == "fail" { n++ } END { print n + 0 }' "$DATA/$1"
}

# bench_rounds NAME [MB]: NAME's values in run order: seconds (3 decimals),
# or with MB, MB/s of moving MB megabytes in that time.
bench_rounds() {
    awk -v mb="${2:-}" '{ v = $2
        if (v != "fail") v = (mb != "") ? sprintf("%.0f", mb / v) : sprintf("%.3f", v)
        printf "%s%s", (NR > 1 ? " " : ""), v }' "$DATA/$1"
}

# bench_fmt_time SECONDS: "850 ms", "1.25 s"; "—" for nothing.
bench_fmt_time() { awk -v v="$1" 'BEGIN { if (v == "") print "—"; else if (v < 1) printf "%.0f ms", v * 1000; else printf "%.2f s", v }'; }

# bench_time_ratio KIND A BASE: A / BASE for times (KIND time), BASE / A for
# throughputs (KIND tput, both stored as seconds), 2 decimals; nothing when
# either is missing.
bench_time_ratio() {
    awk -v k="$1" -v a="$2" -v b="$3" 'BEGIN {
        if (a == "" || b == "" || a <= 0 || b <= 0) exit
        printf "%.2f", (k == "tput") ? b / a : a / b }'
}

# bench_cell NAME FORMAT [NOTE]: a table cell: NAME's median formatted by
# the command FORMAT (its last argument the median), then NOTE, then how
# many rounds failed; "failed (N/N)" when all did, "—" when none ran.
bench_cell() {
    local m fails text
    local -a formatter
    read -ra formatter <<<"$2"
    m=$(bench_med "$1"); fails=$(bench_fails "$1")
    if [[ -z $m ]]; then
        if (( fails > 0 )); then echo "failed ($fails/$fails)"; else echo "—"; fi
        return
    fi
    text="$("${formatter[@]}" "$m")${3:+ $3}"
    (( fails == 0 )) || text="$text, $fails failed"
    echo "$text"
}

# bench_pass TARGET NAME RATIO VALUE: the pass column for the measurement
# NAME: TARGET "<= R" / ">= R" on RATIO, "abs <= X" / "abs < X" on VALUE
# (in the unit the report shows), "-" information only.
bench_pass() {
    local target=$1 ok
    if [[ $target == - ]]; then echo "(info)"; return; fi
    if (( $(bench_fails "$2") > 0 )); then echo "FAIL (errors)"; return; fi
    if [[ -z $4 ]]; then echo "n/a"; return; fi
    case $target in
        "<= "*) ok=$(awk -v r="$3" -v t="${target#<= }" 'BEGIN { print (r != "" && r + 0 <= t + 0) }') ;;
        ">= "*) ok=$(awk -v r="$3" -v t="${target#>= }" 'BEGIN { print (r != "" && r + 0 >= t + 0) }') ;;
        "abs <= "*) ok=$(awk -v v="$4" -v t="${target#abs <= }" 'BEGIN { print (v + 0 <= t + 0) }') ;;
        "abs < "*) ok=$(awk -v v="$4" -v t="${target#abs < }" 'BEGIN { print (v + 0 < t + 0) }') ;;
    esac
    if (( ok )); then echo PASS; else echo FAIL; fi
}

# bench_target_shown TARGET UNIT: how the report shows a bench_pass TARGET.
bench_target_shown() {
    case $1 in
        "<= "*) echo "≤ ${1#<= }×" ;;
        ">= "*) echo "≥ ${1#>= }×" ;;
        "abs <= "*) echo "≤ ${1#abs <= } $2" ;;
        "abs < "*) echo "< ${1#abs < } $2" ;;
        *) echo "—" ;;
    esac
}

# bench_copy_binary DIR: copies BUILDFS into DIR and uses the copy, so that a
# rebuild during the run cannot mix two versions in one table; BUILDFS_INFO
# names the original (bench_binary_line).
# shellcheck disable=SC2034 # the caller reads BUILDFS_INFO
bench_copy_binary() {
    BUILDFS_INFO="$(bench_binary_line "$BUILDFS"), copied to the work dir for the run"
    mkdir -p "$1"
    cp "$BUILDFS" "$1/buildfs"
    BUILDFS=$1/buildfs
}

# bench_run_begin: starts a run: refuses if anything is mounted under
# WORK_ROOT, empties WORK_ROOT (a marked bulk deletion) and DATA, and arms
# bench_run_end for the end, however it comes. Sets RUN_START and
# BENCH_RUN_STATUS (the caller sets it to "complete" at the end).
bench_run_begin() {
    if findmnt -rn -o TARGET | grep -q "^$WORK_ROOT/"; then
        bench_log "something is mounted under $WORK_ROOT (an earlier run?): unmount it first"
        exit 1
    fi
    RUN_START=$(date +%s)
    if [[ -e $WORK_ROOT ]]; then bench_bulk_delete "$WORK_ROOT"; fi
    rm -rf "$DATA"
    mkdir -p "$DATA" "$WORK_ROOT"
    : >"$BENCH_MOUNTS"
    BENCH_OUT=$WORK_ROOT/last-output
    BENCH_RUN_STATUS=interrupted
    trap bench_run_end EXIT
    trap 'bench_log "interrupted (SIGINT)"; exit 130' INT
    trap 'bench_log "terminated (SIGTERM)"; exit 143' TERM
}

# bench_run_end: the EXIT trap of bench_run_begin: takes the run's mounts
# down; writes the report if anything was measured (to RESULTS after a
# complete run, else beside it as NAME.incomplete.md: a full report is never
# overwritten by a partial one); deletes WORK_ROOT unless KEEP_WORK=1.
bench_run_end() {
    local rc=$?
    trap - EXIT INT TERM
    bench_unmount_all || true
    if [[ -f $DATA/.measured ]]; then
        if [[ $BENCH_RUN_STATUS != complete ]]; then
            BENCH_RUN_STATUS="stopped early (exit $rc), see $LOG"
            RESULTS=${RESULTS%.md}.incomplete.md
        fi
        bench_write_report "$BENCH_RUN_STATUS" || true
    fi
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        bench_log "keeping $WORK_ROOT (KEEP_WORK=1)"
    elif findmnt -rn -o TARGET | grep -q "^$WORK_ROOT/"; then
        bench_log "something is still mounted under $WORK_ROOT: not deleting it"
    elif [[ -d $WORK_ROOT ]]; then
        bench_log "deleting $WORK_ROOT ($(find "$WORK_ROOT" -xdev | wc -l) entries; this can take minutes)"
        bench_bulk_delete "$WORK_ROOT"
    fi
    exit "$rc"
}

# bench_write_report STATUS: `write_report STATUS` into RESULTS.
bench_write_report() {
    mkdir -p "$(dirname "$RESULTS")"
    write_report "$1" >"$RESULTS"
    bench_log "report written to $RESULTS"
}

# bench_run_header TITLE STATUS DIR: the report's title, a warning unless
# STATUS is "complete", the date and the run's length, this machine and the
# disk holding DIR.
bench_run_header() {
    echo "# $1"
    echo
    if [[ $2 != complete ]]; then echo "**INCOMPLETE RUN: $2**"; echo; fi
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), run took $(( ($(date +%s) - RUN_START) / 60 )) min"
    bench_machine_lines "$3"
}

# ------------------------------------------ remote stores over HTTP (nginx) --
# Used by bench/remote.sh; any script that needs a Bazel-style HTTP cache on
# 127.0.0.1, optionally behind bench/latency-proxy.py, can use them.

# bench_free_port: a TCP port on 127.0.0.1 that was free a moment ago.
bench_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_nginx_start DIR: nginx with WebDAV PUT (the configuration Bazel
# documents for its HTTP cache) on a free 127.0.0.1 port, serving DIR/data
# under /cache/, as a background job; returns once it answers. Sets
# BENCH_NGINX_PID, BENCH_NGINX_PORT and BENCH_NGINX_LOG, its access log, one
# line a request: method, uri, status, request length (headers and body),
# bytes sent, connection serial number.
bench_nginx_start() {
    local dir i
    dir=$(realpath -m "$1")
    mkdir -p "$dir/data/cache" "$dir/temp"
    BENCH_NGINX_PORT=$(bench_free_port)
    BENCH_NGINX_LOG=$dir/access.log
    cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  log_format bench '\$request_method \$uri \$status \$request_length \$bytes_sent \$connection';
  access_log $BENCH_NGINX_LOG bench;
  client_body_temp_path $dir/temp/body;
  proxy_temp_path $dir/temp/proxy;
  fastcgi_temp_path $dir/temp/fastcgi;
  uwsgi_temp_path $dir/temp/uwsgi;
  scgi_temp_path $dir/temp/scgi;
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$BENCH_NGINX_PORT;
    location /cache/ {
      root $dir/data;
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 2G;
      allow all;
    }
  }
}
CONF
    : >"$BENCH_NGINX_LOG"
    nginx -p "$dir" -c "$dir/nginx.conf" & BENCH_NGINX_PID=$!
    for (( i = 0; i < 100; i++ )); do
        curl -s -o /dev/null "http://127.0.0.1:$BENCH_NGINX_PORT/" && return 0
        kill -0 "$BENCH_NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench_nginx_start: nginx did not start (see $dir/error.log)" >&2
    return 1
}

# bench_nginx_stop: stops the nginx of bench_nginx_start.
bench_nginx_stop() {
    [[ -n ${BENCH_NGINX_PID:-} ]] || return 0
    kill "$BENCH_NGINX_PID" 2>/dev/null || true
    wait "$BENCH_NGINX_PID" 2>/dev/null || true
    BENCH_NGINX_PID=
}

# bench_nginx_mark: how many requests nginx has logged so far (a step's start).
bench_nginx_mark() { wc -l <"$BENCH_NGINX_LOG"; }

# bench_nginx_step MARK: what the requests logged since MARK did, as
# "REQUESTS BYTES_TO_SERVER BYTES_FROM_SERVER CONNECTIONS GETS PUTS HEADS"
# (bytes with headers; connections: distinct ones that carried a request).
bench_nginx_step() {
    tail -n +"$(( $1 + 1 ))" "$BENCH_NGINX_LOG" | awk '
        { n++; up += $4; down += $5; if (!($6 in c)) { c[$6]; conns++ } m[$1]++ }
        END { printf "%d %d %d %d %d %d %d\n", n, up, down, conns, m["GET"], m["PUT"], m["HEAD"] }'
}

# bench_proxy_start TARGET_PORT DELAY_MS [RATE_MBIT]: bench/latency-proxy.py on
# a free 127.0.0.1 port, forwarding to 127.0.0.1:TARGET_PORT with every chunk
# held DELAY_MS each way (RTT = 2 DELAY_MS), over a link of RATE_MBIT each way
# shared by all connections if given (else unlimited). Sets BENCH_PROXY_PID and
# BENCH_PROXY_PORT; its counters go to BENCH_PROXY_STATS (JSON, at stop).
bench_proxy_start() {
    local out i
    out=$(mktemp)
    BENCH_PROXY_STATS=${BENCH_PROXY_STATS:-$out.json}
    python3 "$_BENCH_LIB_DIR/latency-proxy.py" --target "127.0.0.1:$1" --delay-ms "$2" --rate-mbit "${3:-0}" \
        --stats "$BENCH_PROXY_STATS" >"$out" 2>/dev/null & BENCH_PROXY_PID=$!
    for (( i = 0; i < 100; i++ )); do
        BENCH_PROXY_PORT=$(head -n 1 "$out")
        if [[ -n $BENCH_PROXY_PORT ]]; then rm -f "$out"; return 0; fi
        kill -0 "$BENCH_PROXY_PID" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$out"
    echo "bench_proxy_start: latency-proxy.py did not start" >&2
    return 1
}

# bench_proxy_stop: stops the proxy of bench_proxy_start (its counters are
# then in BENCH_PROXY_STATS).
bench_proxy_stop() {
    [[ -n ${BENCH_PROXY_PID:-} ]] || return 0
    kill -TERM "$BENCH_PROXY_PID" 2>/dev/null || true
    wait "$BENCH_PROXY_PID" 2>/dev/null || true
    BENCH_PROXY_PID=
}

# bench_time_capped CAP COMMAND...: runs COMMAND (its output to stderr) and
# prints the seconds it took (3 decimals), or ">CAP" when it was still
# running after CAP seconds and was stopped (timeout: its whole process
# group). Fails when COMMAND fails.
bench_time_capped() {
    local cap=$1 start end rc=0
    shift
    start=$EPOCHREALTIME
    timeout --kill-after=10 "$cap" "$@" >&2 || rc=$?
    end=$EPOCHREALTIME
    if (( rc == 124 || rc == 137 )); then echo ">$cap"; return 0; fi
    (( rc == 0 )) || return "$rc"
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

# bench_median_capped FILE: bench_median of FILE whose lines may also be
# ">CAP" (a run stopped at CAP seconds, counted as longer than any other);
# ">CAP" when that is the median.
bench_median_capped() {
    local median
    median=$(sed 's/^>.*/1e18/' "$1" | bench_median /dev/stdin) || return 1
    if awk -v m="$median" 'BEGIN { exit !(m >= 1e17) }'; then median=$(grep -m 1 '^>' "$1"); fi
    echo "$median"
}

# bench_fuse_requests COMMAND...: runs COMMAND with the kernel's FUSE request
# tracepoints on (tracefs, mounted if it is not) and prints, per opcode, the
# requests sent to any FUSE daemon meanwhile, their summed time from send to
# answer and the mean, most time first. Sees requests over /dev/fuse and over
# io_uring alike (strace of the daemon sees only the former). Summed times
# of requests in flight together (read-ahead) overlap. Fails when COMMAND
# fails or tracing is not available.
bench_fuse_requests() {
    local t=/sys/kernel/tracing rc=0
    if [[ ! -d $t/events/fuse ]]; then
        mount -t tracefs nodev "$t" 2>/dev/null || true
        [[ -d $t/events/fuse ]] || { echo "bench_fuse_requests: no FUSE tracepoints in $t" >&2; return 1; }
    fi
    echo 0 >"$t/tracing_on"
    : >"$t/trace"
    echo 65536 >"$t/buffer_size_kb"
    echo 1 >"$t/events/fuse/fuse_request_send/enable"
    echo 1 >"$t/events/fuse/fuse_request_end/enable"
    echo 1 >"$t/tracing_on"
    "$@" || rc=$?
    echo 0 >"$t/tracing_on"
    echo 0 >"$t/events/fuse/fuse_request_send/enable"
    echo 0 >"$t/events/fuse/fuse_request_end/enable"
    python3 - "$t/trace" <<'PY'
import collections, re, sys
sent, totals = {}, collections.defaultdict(lambda: [0, 0.0])
line_re = re.compile(r"\s(\d+\.\d+): fuse_request_(send|end): connection (\d+) req (\d+)(?: opcode \d+ \((\w+)\))?")
for line in open(sys.argv[1]):
    m = line_re.search(line)
    if not m:
        continue
    at, kind, key = float(m.group(1)), m.group(2), (m.group(3), m.group(4))
    if kind == "send":
        sent[key] = (at, m.group(5))
    elif key in sent:
        start, opcode = sent.pop(key)
        totals[opcode][0] += 1
        totals[opcode][1] += at - start
print(f"{'opcode':<20} {'requests':>8} {'summed':>10} {'mean':>10}")
for opcode, (n, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
    print(f"{opcode:<20} {n:>8} {seconds:>9.3f}s {seconds / n * 1e6:>8.1f}us")
if sent:
    print(f"({len(sent)} requests not answered while tracing)")
PY
    return "$rc"
}
