#!/usr/bin/env bash
# Snapshot-mount benchmark: `buildfs mount --from KEY` against restoring the
# same tree from its tar.zst, side by side in one run, as medians and ratios.
#
#   bench/snapshot-mount.sh [--quick] [--only GROUPS] [--rounds N]
#
#   --quick        small trees (1/20 of the sizes below), 1 round, no settle
#                  wait; the report goes to bench/work/snapshot-mount-quick.md
#                  unless RESULTS is set
#   --only GROUPS  comma-separated, from (default: all):
#                    mount   time until `mount --from` is usable (the command
#                            returns + stat of the root), big and 10x smaller
#                            snapshot, vs zstd -d | tar -x of its tar.zst
#                    commit  commit after appending to one deep file, and
#                            after touching nothing, vs tar | zstd of the tree
#                    read    reading every file through the mount, cold (fresh
#                            mount, caches dropped) vs zstd -d of the tar.zst,
#                            and warm (2nd read) vs native 2nd read
#                    make    make clean + make -j2 of the zstd library on a
#                            mount over a snapshot of it vs a plain directory
#   --rounds N     rounds for every group (default: ROUNDS=5, MAKE_ROUNDS=3)
#   --report-only  write the report again from the numbers of the last run
#                  (bench/work/snapshot-mount-data), e.g. after an interrupted run
#
# The trees (made by snapshot-make-tree.py and make-build-tree.sh) are kept in
# bench/work/snapshot-trees (git-ignored) and reused while their generator is
# unchanged. Everything else lives in WORK_ROOT and is deleted at the end.
#
# Environment: BUILDFS (default <repo>/.build-release/buildfs), RESULTS, DATA,
# WORK_ROOT (default bench/work/snapshot-mount), KEEP_WORK=1, ROUNDS,
# MAKE_ROUNDS, MAKE_JOBS (2), BIG_SCALE / SMALL_SCALE (1 / 0.1; --quick
# 0.05 / 0.005), SETTLE_SECONDS (lib.sh; default 360, 0 with --quick),
# PROFILE (1: profile one extra cold read with perf when a read target
# fails, the default; 0: never; always: always).
# Needs root: caches are dropped with /proc/sys/vm/drop_caches.
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
QUICK=0
for arg in "$@"; do [[ $arg == --quick ]] && QUICK=1; done
if (( QUICK )); then SETTLE_SECONDS=${SETTLE_SECONDS:-0}; fi
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

BUILDFS=${BUILDFS:-$REPO_DIR/.build-release/buildfs}
WORK_ROOT=${WORK_ROOT:-$BENCH_DIR/work/snapshot-mount}
KEEP_WORK=${KEEP_WORK:-0}
TREES=$BENCH_DIR/work/snapshot-trees       # cached inputs, kept between runs
LOG=$BENCH_DIR/work/snapshot-mount.log     # every command's output
DATA=${DATA:-$BENCH_DIR/work/snapshot-mount-data}   # raw numbers, kept after the run
MAKE_JOBS=${MAKE_JOBS:-2}
PROFILE=${PROFILE:-1}
REVISION="unknown"   # the repo revision when the run started
ALL_GROUPS=(mount commit read make)

if (( QUICK )); then
    RESULTS=${RESULTS:-$BENCH_DIR/work/snapshot-mount-quick.md}
    ROUNDS=${ROUNDS:-1}; MAKE_ROUNDS=${MAKE_ROUNDS:-1}
    BIG_SCALE=${BIG_SCALE:-0.05}; SMALL_SCALE=${SMALL_SCALE:-0.005}
else
    RESULTS=${RESULTS:-$BENCH_DIR/results/snapshot-mount.md}
    ROUNDS=${ROUNDS:-5}; MAKE_ROUNDS=${MAKE_ROUNDS:-3}
    BIG_SCALE=${BIG_SCALE:-1}; SMALL_SCALE=${SMALL_SCALE:-0.1}
fi
SIZES=(big small)

INPUTS=$WORK_ROOT/inputs     # stores, archives, native copies, the binary
RUNS=$WORK_ROOT/runs         # upper dirs, mountpoints, extract dirs
TRASH=$WORK_ROOT/trash       # what the run is done with; deleted at the end
MOUNTS_FILE=$WORK_ROOT/mounted

# ---------------------------------------------------------------- plumbing --

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$LOG" >&2; }
die() { log "snapshot-mount.sh: $*"; exit 1; }
usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }

# Nothing is deleted while measuring (see bench_bulk_delete in lib.sh): what
# a round is done with moves into $TRASH, which goes at the end.
retire() {
    local path
    for path in "$@"; do
        [[ -e $path ]] || continue
        mkdir -p "$TRASH"
        mv "$path" "$(mktemp -d "$TRASH/XXXXXX")/"
    done
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# record NAME ROUND VALUE ("fail" for a failed measurement)
record() { echo "$2 $3" >>"$DATA/$1"; }

sample_load() {
    local busy
    busy=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -cxE 'swift-frontend|swift-build|swiftc|swift-driver|cc1|cc1plus' || true)
    echo "$(cut -d' ' -f1 /proc/loadavg) ${busy:-0}" >>"$DATA/load"
}

# daemon_cpu PID: user+system seconds of all the daemon's threads so far.
daemon_cpu() {
    local pid=$1 stat
    if (( pid == 0 )) || ! stat=$(cat "/proc/$pid/stat" 2>/dev/null); then echo 0; return; fi
    stat=${stat##*) }
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / tck }' <<<"$stat"
}

# measure NAME ROUND PID CMD...: runs CMD once (stdout and stderr to the log)
# and records its wall seconds; with a daemon PID also the daemon's CPU
# seconds meanwhile (NAME.cpu). `sync` first, outside the timed region. A
# failure is recorded as "fail" and returned.
measure() {
    local name=$1 round=$2 pid=$3 cpu0 start secs rc=0
    shift 3
    sync
    sample_load
    echo "+ [$name r$round] $*" >>"$LOG"
    MEASURE_LOG_LINE=$(wc -l <"$LOG")
    cpu0=$(daemon_cpu "$pid")
    start=$EPOCHREALTIME
    "$@" >>"$LOG" 2>&1 || rc=$?
    secs=$(seconds_since "$start")
    if (( rc != 0 )); then
        record "$name" "$round" fail
        log "$name (round $round) FAILED with exit code $rc after $secs s (see $LOG)"
        return "$rc"
    fi
    record "$name" "$round" "$secs"
    if (( pid != 0 )); then
        record "$name.cpu" "$round" "$(awk -v a="$cpu0" -v b="$(daemon_cpu "$pid")" 'BEGIN { printf "%.2f", b - a }')"
    fi
    echo "  $secs s" >>"$LOG"
}

# run_unit "NAMES" FUNCTION ARGS...: FUNCTION (one side of one round) in a
# subshell under `set -e`. If it fails, each measurement in NAMES that it did
# not record for this round (the round is the last argument) is recorded as
# failed, and whatever it left mounted is unmounted: the run goes on.
run_unit() {
    local names=$1 fn=$2 round=${*: -1} rc name
    shift
    set +e
    ( set -e; "$@" )
    rc=$?
    set -e
    if (( rc != 0 )); then
        log "$fn (round $round) failed with exit code $rc"
        echo "$fn round $round: exit code $rc; last log line: $(grep -v '^\[' "$LOG" | tail -n 1)" >>"$DATA/unit_failures"
        for name in $names; do
            grep -qs "^$round " "$DATA/$name" || record "$name" "$round" fail
        done
        unmount_all || true
    fi
}

# ------------------------------------------------------------------ mounts --

is_mounted() { findmnt -rn --mountpoint "$1" >/dev/null 2>&1; }

# The daemon's pid, from the record `buildfs mount` leaves for `umount`.
daemon_pid() {
    python3 - "$1" <<'EOF' 2>/dev/null || echo 0
import glob, json, os, sys
d = os.environ.get("XDG_RUNTIME_DIR")
d = d + "/buildfs" if d else ("/run/buildfs" if os.geteuid() == 0 else "/tmp/buildfs-%d" % os.geteuid())
for f in glob.glob(d + "/*.json"):
    try:
        r = json.load(open(f))
    except Exception:
        continue
    if isinstance(r, dict) and r.get("mountpoint") == sys.argv[1]:
        print(r["pid"]); break
else:
    print(0)
EOF
}

# mount_from MP UPPER STORE KEY: the timed command of the mount group: the
# mount, then a stat of its root (usable from then on).
mount_from() {
    "$BUILDFS" mount "$1" --upper "$2" --from "$4" --store "$3" && stat "$1" >/dev/null
}

# new_mount NAME: a fresh upper dir and mountpoint under $RUNS;
# sets MP and UPPER. The mount itself is made by the caller (timed or not).
new_mount() {
    UPPER=$RUNS/$1-upper
    MP=$RUNS/$1-mnt
    retire "$UPPER" "$MP"
    mkdir -p "$UPPER" "$MP"
    echo "$MP" >>"$MOUNTS_FILE"
}

unmount_mp() {
    local mp=$1 pid i
    if is_mounted "$mp"; then
        pid=$(daemon_pid "$mp")
        "$BUILDFS" umount "$mp" >>"$LOG" 2>&1 || { log "buildfs umount $mp failed"; umount "$mp" >>"$LOG" 2>&1 || true; }
        if is_mounted "$mp"; then log "$mp still mounted: lazy unmount"; umount -l "$mp" >>"$LOG" 2>&1 || true; fi
        i=0
        while (( pid != 0 )) && kill -0 "$pid" 2>/dev/null && (( i++ < 300 )); do sleep 0.1; done
    fi
    if [[ -f $MOUNTS_FILE ]]; then
        grep -vxF -- "$mp" "$MOUNTS_FILE" >"$MOUNTS_FILE.tmp" || true
        mv "$MOUNTS_FILE.tmp" "$MOUNTS_FILE"
    fi
}

unmount_all() {
    local mp
    [[ -f $MOUNTS_FILE ]] || return 0
    while read -r mp; do unmount_mp "$mp"; done < <(cat "$MOUNTS_FILE")
}

# Like bench_wait_for_settle (lib.sh), in short sleeps: on this shared machine
# a stray kill of one `sleep` must not end the run.
settle_wait() {
    local age
    while [[ -f $BENCH_SETTLE_MARK ]]; do
        age=$(( $(date +%s) - $(stat -c %Y "$BENCH_SETTLE_MARK") ))
        (( age < SETTLE_SECONDS )) || return 0
        log "waiting $(( SETTLE_SECONDS - age )) s: the last bulk deletion was ${age} s ago"
        sleep 10 || true
    done
}

# ------------------------------------------------------------------ inputs --

tree_dir() { echo "$TREES/$1-$(scale_of "$1")"; }
scale_of() { if [[ $1 == big ]]; then echo "$BIG_SCALE"; else echo "$SMALL_SCALE"; fi; }
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# The generated trees are cached; a tree whose summary is missing (an
# interrupted generation) or from another generator version is made anew.
prepare_tree() {
    local size=$1 dir version
    dir=$(tree_dir "$size")
    version=$(sed -n 's/^GENERATOR_VERSION = //p' "$BENCH_DIR/snapshot-make-tree.py")
    if [[ -f $dir.json && $(json_field "$dir.json" generator_version) == "$version" ]]; then
        log "reusing the $size tree $dir"
    else
        if [[ -e $dir || -e $dir.json ]]; then bench_bulk_delete "$dir" "$dir.json"; fi
        mkdir -p "$TREES"
        log "generating the $size tree (scale $(scale_of "$size")) in $dir"
        python3 "$BENCH_DIR/snapshot-make-tree.py" "$dir" --scale "$(scale_of "$size")" >>"$LOG" 2>&1
    fi
    json_field "$dir.json" files >"$DATA/$size.files"
    json_field "$dir.json" file_bytes >"$DATA/$size.bytes"
    json_field "$dir.json" deep_file >"$DATA/$size.deep"
    find "$dir" -type d | wc -l >"$DATA/$size.dirs"
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("%(text_files)d sources/headers, %(object_files)d object files, %(binaries)d binaries" % d)' \
        "$dir.json" >"$DATA/$size.shape"
}

# Store, tar.zst and native copy of each tree (untimed).
prepare_snapshot() {
    local size=$1 dir store=$INPUTS/store-$1
    dir=$(tree_dir "$size")
    log "$size: import, tar.zst, export to a plain directory (untimed)"
    "$BUILDFS" import "$dir" --key "$size" --store "$store" >>"$LOG" 2>&1
    tail -n 1 "$LOG" >"$DATA/$size.import"
    tar -cf - -C "$dir" . | zstd -T0 -3 -q >"$INPUTS/$size.tar.zst"
    du -sb "$INPUTS/$size.tar.zst" | cut -f1 >"$DATA/$size.archive_bytes"
    du -sb "$store" | cut -f1 >"$DATA/$size.store_bytes"
    mkdir -p "$INPUTS/native-$size"
    "$BUILDFS" export "$INPUTS/native-$size" --from "$size" --store "$store" >>"$LOG" 2>&1
    [[ $(find "$INPUTS/native-$size" -type f | wc -l) == "$(cat "$DATA/$size.files")" ]] \
        || die "the export of $size has the wrong number of files"
}

# The zstd C project of make-build-tree.sh, compiled once (its build/ is in
# the snapshot, as in a CI cache; the benchmark runs make clean first).
prepare_project() {
    local tree=$TREES/build-tree store=$INPUTS/store-proj
    log "the zstd project (make-build-tree.sh into $tree; reused when unchanged)"
    "$BENCH_DIR/make-build-tree.sh" "$tree" >>"$LOG" 2>&1
    "$BUILDFS" import "$tree/project" --key proj --store "$store" >>"$LOG" 2>&1
    echo "$(find "$tree/project" -name '*.c' | wc -l) C files, $(find "$tree/project" -type f | wc -l) files in all ($(du -sh "$tree/project" | cut -f1)) incl. the build/ outputs of an earlier make" \
        >"$DATA/proj.desc"
}

# --------------------------------------------------------------- workloads --

read_all() { ( cd "$1" && find . -type f -print0 | xargs -0 cat >/dev/null ); }
extract() { mkdir -p "$2" && zstd -d -q -c "$1" | tar -xf - -C "$2"; }
decompress() { zstd -d -q -c "$1" >/dev/null; }
archive() { tar -cf - -C "$1" . | zstd -T0 -3 -q >"$2"; }
commit() { "$BUILDFS" commit "$1" --key "$2" --store "$3"; }

# 1. Mount time, cold caches (as a job starting on a host whose store was
# written long ago), and warm (info), vs a cold extraction of the tar.zst.
unit_mount() {
    local size=$1 round=$2 store=$INPUTS/store-$1
    new_mount "mount-$size-r$round"
    drop_caches
    measure "mount_cold_$size" "$round" 0 mount_from "$MP" "$UPPER" "$store" "$size"
    [[ -d $MP/src && -d $MP/bin ]] || { log "the $size mount does not show src/ and bin/"; return 1; }
    if (( round == 1 )); then find "$UPPER" | wc -l >"$DATA/mount_upper_entries_$size"; fi
    unmount_mp "$MP"
    new_mount "mount-warm-$size-r$round"
    measure "mount_warm_$size" "$round" 0 mount_from "$MP" "$UPPER" "$store" "$size"
    unmount_mp "$MP"
}

unit_extract() {
    local size=$1 round=$2 dir=$RUNS/extract-$1-r$2
    drop_caches
    measure "extract_$size" "$round" 0 extract "$INPUTS/$size.tar.zst" "$dir"
    retire "$dir"
}

group_mount() {
    local round size
    for (( round = 1; round <= ROUNDS; round++ )); do
        for size in "${SIZES[@]}"; do
            log "mount $size, round $round of $ROUNDS"
            local m="mount_cold_$size mount_warm_$size" x="extract_$size"
            if (( round % 2 )); then run_unit "$m" unit_mount "$size" "$round"; run_unit "$x" unit_extract "$size" "$round"
            else run_unit "$x" unit_extract "$size" "$round"; run_unit "$m" unit_mount "$size" "$round"; fi
        done
    done
}

# 2. Commit of a fresh mount with nothing touched, and after appending a line
# to one file deep in the tree; vs tar | zstd -T0 -3 of the whole native tree
# (what a CI cache save does). Warm caches (a build just ran).
unit_commit_noop() {
    local size=$1 round=$2 store=$INPUTS/store-$1
    new_mount "commit-noop-$size-r$round"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    measure "commit_noop_$size" "$round" 0 commit "$MP" "noop-$round" "$store"
    if (( round == 1 )); then tail -n 2 "$LOG" | head -n 1 >"$DATA/commit_noop_$size.out"; fi
    unmount_mp "$MP"
}

unit_commit_change() {
    local size=$1 round=$2 store=$INPUTS/store-$1 deep
    deep=$(cat "$DATA/$size.deep")
    new_mount "commit-change-$size-r$round"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    change_line "$round" >>"$MP/$deep"
    measure "commit_change_$size" "$round" 0 commit "$MP" "change-$round" "$store"
    if (( round == 1 )); then tail -n 2 "$LOG" | head -n 1 >"$DATA/commit_change_$size.out"; fi
    unmount_mp "$MP"
    if (( round == 1 )); then check_commit "$size" "$deep"; fi
}

change_line() { echo "/* buildfs bench change $1 */"; }

# Untimed: the committed snapshot shows the change, and an untouched file.
check_commit() {
    local size=$1 deep=$2 store=$INPUTS/store-$1 native=$INPUTS/native-$1 line binary
    local verdict="the changed file ends with the appended line and is otherwise unchanged, an untouched binary is unchanged"
    line=$(change_line 1)
    binary=$(cd "$native" && find bin -type f | LC_ALL=C sort | head -n 1)
    new_mount "commit-check-$size"
    mount_from "$MP" "$UPPER" "$store" change-1 >>"$LOG" 2>&1
    if [[ $(tail -n 1 "$MP/$deep") != "$line" ]]; then
        verdict="WRONG: the changed file in snapshot change-1 does not end with the appended line"
    elif ! cmp -s <(head -c -$(( ${#line} + 1 )) "$MP/$deep") "$native/$deep"; then
        verdict="WRONG: the changed file in snapshot change-1 differs before the appended line"
    elif ! cmp -s "$MP/$binary" "$native/$binary"; then
        verdict="WRONG: an untouched binary differs in snapshot change-1"
    fi
    echo "$size: $verdict" >>"$DATA/commit.check"
    log "commit check ($size): $verdict"
    unmount_mp "$MP"
}

unit_save() {
    local size=$1 round=$2
    measure "tar_save_$size" "$round" 0 archive "$INPUTS/native-$size" "$RUNS/save-$size-r$round.tar.zst"
    retire "$RUNS/save-$size-r$round.tar.zst"
}

commit_units() {
    run_unit "commit_noop_$1" unit_commit_noop "$1" "$2"
    run_unit "commit_change_$1" unit_commit_change "$1" "$2"
}

group_commit() {
    local round size
    for size in "${SIZES[@]}"; do read_all "$INPUTS/native-$size"; done   # tar reads a warm tree
    for (( round = 1; round <= ROUNDS; round++ )); do
        for size in "${SIZES[@]}"; do
            log "commit $size, round $round of $ROUNDS"
            if (( round % 2 )); then commit_units "$size" "$round"; run_unit "tar_save_$size" unit_save "$size" "$round"
            else run_unit "tar_save_$size" unit_save "$size" "$round"; commit_units "$size" "$round"; fi
        done
    done
}

# 3. Reads. buildfs: a fresh mount, caches dropped, every file read (cold),
# then read again through the same mount (warm), and a third time (the
# second read asks for every file's attributes again: the kernel drops a
# FUSE file's atime after reading it from the daemon). Baselines: zstd -d of the
# tar.zst to /dev/null (cold), and the native copy read cold (info) and
# again (warm).
unit_read_buildfs() {
    local size=$1 round=$2 store=$INPUTS/store-$1 pid
    new_mount "read-$size-r$round"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    pid=$(daemon_pid "$MP")
    drop_caches
    if measure "read_cold_$size" "$round" "$pid" read_all "$MP"; then
        measure "read_warm_$size" "$round" "$pid" read_all "$MP" || true
        measure "read_again_$size" "$round" "$pid" read_all "$MP" || true
    else
        record "read_warm_$size" "$round" fail
        record "read_again_$size" "$round" fail
        tail -n +$(( MEASURE_LOG_LINE + 1 )) "$LOG" | grep -v '^\[' >"$DATA/read_errors_$size.r$round" || true
        {
            echo "round $round: $(wc -l <"$DATA/read_errors_$size.r$round") error lines, e.g. \"$(grep -m 1 'Too many open files' "$DATA/read_errors_$size.r$round" || head -n 1 "$DATA/read_errors_$size.r$round")\""
            echo "round $round: $(grep -c 'Too many open files' "$DATA/read_errors_$size.r$round") 'Too many open files', $(grep -c 'Input/output error' "$DATA/read_errors_$size.r$round") 'Input/output error'"
        } >>"$DATA/read_error_$size"
        echo "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) open descriptors in the daemon, limit $(awk '/^Max open files/ { print $4 }' "/proc/$pid/limits" 2>/dev/null)" \
            >>"$DATA/read_error_$size"
    fi
    if (( round == 1 )); then
        sleep 1.5   # the daemon publishes its counters once a second
        "$BUILDFS" stats "$MP" --json --store "$store" >"$DATA/read_stats_$size.json" 2>>"$LOG" || true
        awk '/^(VmHWM|Threads):/ { printf "%s %s %s; ", $1, $2, $3 }' "/proc/$pid/status" >"$DATA/read_daemon_$size" 2>/dev/null || true
    fi
    unmount_mp "$MP"
}

unit_read_baseline() {
    local size=$1 round=$2
    drop_caches
    measure "zstd_cold_$size" "$round" 0 decompress "$INPUTS/$size.tar.zst"
    drop_caches
    measure "native_cold_$size" "$round" 0 read_all "$INPUTS/native-$size"
    measure "native_warm_$size" "$round" 0 read_all "$INPUTS/native-$size"
}

group_read() {
    local round size
    for (( round = 1; round <= ROUNDS; round++ )); do
        for size in "${SIZES[@]}"; do
            log "read $size, round $round of $ROUNDS"
            local r="read_cold_$size read_warm_$size read_again_$size" b="zstd_cold_$size native_cold_$size native_warm_$size"
            if (( round % 2 )); then run_unit "$r" unit_read_buildfs "$size" "$round"; run_unit "$b" unit_read_baseline "$size" "$round"
            else run_unit "$b" unit_read_baseline "$size" "$round"; run_unit "$r" unit_read_buildfs "$size" "$round"; fi
        done
    done
}

# One extra, untimed cold read under `perf record -a` (both cores: the
# reader, the kernel's FUSE and the daemon), summarized into the report.
profile_cold_read() {
    local size=$1 store=$INPUTS/store-$1 perf_pid pid out=$DATA/perf-$1
    command -v perf >/dev/null || { log "no perf: not profiling"; return 0; }
    log "profiling a cold read of $size with perf (untimed)"
    new_mount "profile-$size"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    pid=$(daemon_pid "$MP")
    drop_caches
    perf record -a -g -F 499 -o "$WORK_ROOT/perf.data" >>"$LOG" 2>&1 &
    perf_pid=$!
    sleep 1
    read_all "$MP" >>"$LOG" 2>&1 || true
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    unmount_mp "$MP"
    local data=$WORK_ROOT/perf.data
    {
        echo "# all samples on both cores, by process (other processes = machine load)"
        perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -n 8
        echo "# the reader (cat, find), by binary"
        perf report -i "$data" --no-children --comms cat,find --percentage relative --sort comm,dso --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -n 4
        echo "# the daemon (pid $pid) only, by symbol ([k] kernel, [.] user space)"
        perf report -i "$data" --no-children --pid "$pid" --percentage relative --sort dso,sym --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -n 30 | { swift-demangle --simplified 2>/dev/null || cat; } | cut -c1-160
    } >"$out.txt" || true
    retire "$WORK_ROOT/perf.data"
}

# 4. make clean + make -j2 on a mount over the project's snapshot vs in a
# plain directory holding the same tree (an export of the snapshot).
make_clean() { make -C "$1" clean; }
make_build() { make -C "$1" -j"$MAKE_JOBS" CC=gcc; }

unit_make() {
    local fs=$1 round=$2 dir pid=0 store=$INPUTS/store-proj
    if [[ $fs == buildfs ]]; then
        new_mount "make-r$round"
        mount_from "$MP" "$UPPER" "$store" proj >>"$LOG" 2>&1
        dir=$MP
        pid=$(daemon_pid "$MP")
    else
        dir=$RUNS/make-native-r$round
        retire "$dir"; mkdir -p "$dir"
        "$BUILDFS" export "$dir" --from proj --store "$store" >>"$LOG" 2>&1
    fi
    measure "make_clean_$fs" "$round" "$pid" make_clean "$dir"
    measure "make_$fs" "$round" "$pid" make_build "$dir"
    "$dir/build/roundtrip" <"$dir/lib/zstd.h" >>"$LOG" || { log "the program built on $fs does not work"; return 1; }
    if [[ $fs == buildfs ]]; then unmount_mp "$MP"; fi
}

group_make() {
    local round dir=$RUNS/make-warmup
    log "make warm-up (untimed, native)"
    mkdir -p "$dir"
    {
        "$BUILDFS" export "$dir" --from proj --store "$INPUTS/store-proj"
        make_clean "$dir"
        make_build "$dir"
    } >>"$LOG" 2>&1
    for (( round = 1; round <= MAKE_ROUNDS; round++ )); do
        log "make, round $round of $MAKE_ROUNDS"
        if (( round % 2 )); then run_unit "make_clean_buildfs make_buildfs" unit_make buildfs "$round"; run_unit "make_clean_native make_native" unit_make native "$round"
        else run_unit "make_clean_native make_native" unit_make native "$round"; run_unit "make_clean_buildfs make_buildfs" unit_make buildfs "$round"; fi
    done
    # The target row: clean + build, per round.
    local fs
    for fs in buildfs native; do
        join <(sort "$DATA/make_clean_$fs") <(sort "$DATA/make_$fs") |
            awk '{ print $1, ($2 == "fail" || $3 == "fail") ? "fail" : $2 + $3 }' | sort -n >"$DATA/make_total_$fs"
    done
}

# ------------------------------------------------------------------ report --

values() { [[ -f $DATA/$1 ]] && awk '{ print $2 }' "$DATA/$1"; }
ok_values() { values "$1" | grep -v '^fail$' || true; }
fail_count() { values "$1" | grep -c '^fail$' || true; }
med() { ok_values "$1" | bench_median /dev/stdin 2>/dev/null || true; }

fmt_time() { awk -v v="$1" 'BEGIN { if (v == "") print "—"; else if (v < 1) printf "%.0f ms", v * 1000; else printf "%.2f s", v }'; }
fmt_mb() { awk -v v="$1" 'BEGIN { printf "%.0f MB", v / 1e6 }'; }
# throughput of SIZE's file bytes in SECONDS
fmt_tput() { awk -v s="$2" -v b="$(cat "$DATA/$1.bytes")" 'BEGIN { if (s == "") print "—"; else printf "%.0f MB/s", b / 1e6 / s }'; }

# cell NAME KIND [SIZE]: the median, formatted, with failures noted
cell() {
    local m fails text
    m=$(med "$1"); fails=$(fail_count "$1")
    if [[ -z $m ]]; then
        if (( fails > 0 )); then echo "failed ($fails/$fails)"; else echo "—"; fi
        return
    fi
    if [[ $2 == tput ]]; then text=$(fmt_tput "$3" "$m"); else text=$(fmt_time "$m"); fi
    (( fails == 0 )) || text="$text, $fails failed"
    echo "$text"
}

# row LABEL OURS BASE KIND TARGET [SIZE]: one table row.
#   KIND time: ratio = ours / base; tput: ratio = base time / our time
#   TARGET "<= R" / ">= R" on the ratio, "abs <= S" on our median seconds
row() {
    local label=$1 ours=$2 base=$3 kind=$4 target=$5 size=${6:-} a b r pass shown
    a=$(med "$ours"); b=$(med "$base")
    r=$(awk -v a="$a" -v b="$b" -v k="$kind" 'BEGIN {
        if (a == "" || b == "" || a <= 0 || b <= 0) exit
        printf "%.2f", (k == "tput") ? b / a : a / b }')
    pass="n/a"
    if (( $(fail_count "$ours") > 0 )); then pass="FAIL (errors)"
    elif [[ -n $a ]]; then
        case $target in
            "abs <= "*) pass=$(awk -v v="$a" -v t="${target#abs <= }" 'BEGIN { print (v <= t) ? "PASS" : "FAIL" }') ;;
            "<= "*) pass=$(awk -v v="$r" -v t="${target#<= }" 'BEGIN { print (v != "" && v <= t) ? "PASS" : "FAIL" }') ;;
            ">= "*) pass=$(awk -v v="$r" -v t="${target#>= }" 'BEGIN { print (v != "" && v >= t) ? "PASS" : "FAIL" }') ;;
            -) pass="(info)" ;;
        esac
    fi
    case $target in
        "abs <= "*) shown="≤ ${target#abs <= } s" ;;
        "<= "*) shown="≤ ${target#<= }×" ;;
        ">= "*) shown="≥ ${target#>= }×" ;;
        *) shown="—" ;;
    esac
    echo "| $label | $(cell "$ours" "$kind" "$size") | $(cell "$base" "$kind" "$size") | ${r:+${r}×} | $shown | $pass |"
}

# size_ratio_row: big vs small mount time (size independence)
size_ratio_row() {
    local a b r pass
    a=$(med mount_cold_big); b=$(med mount_cold_small)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }')
    pass=$(awk -v r="$r" 'BEGIN { print (r != "" && r <= 1.5) ? "PASS" : "FAIL" }')
    echo "| 1c. mount time, big / 10× smaller snapshot (size independence) | $(fmt_time "$a") | $(fmt_time "$b") | ${r:+${r}×} | ≤ 1.5× | $pass |"
}

detail() {   # detail NAME LABEL: every round's value, and daemon CPU if any
    local vals cpu
    [[ -f $DATA/$1 ]] || return 0
    vals=$(awk '{ printf "%s%s", (NR > 1 ? " " : ""), ($2 == "fail" ? "fail" : sprintf("%.3f", $2)) }' "$DATA/$1")
    cpu=$(med "$1.cpu")
    echo "| $2 | $vals | $(fmt_time "$(med "$1")") | ${cpu:+$cpu s} |"
}

size_line() {
    local s=$1
    echo "$(cat "$DATA/$s.files") files in $(cat "$DATA/$s.dirs") directories, $(fmt_mb "$(cat "$DATA/$s.bytes")") of file data ($(cat "$DATA/$s.shape")); tar.zst $(fmt_mb "$(cat "$DATA/$s.archive_bytes")"), store $(fmt_mb "$(cat "$DATA/$s.store_bytes")")"
}

has() { [[ -s $DATA/$1 ]]; }

write_report() {
    local status=$1 version load s
    version=$("$BUILDFS" --version 2>/dev/null | head -n 1 || true)
    load=$(sort -g "$DATA/load" 2>/dev/null | awk '{ l[NR] = $1; if ($2 > 0) busy++ }
        END { if (NR == 0) exit
              printf "1-min load average min %s / median %s / max %s over %d samples (one per timed command); another compile (swift-frontend, cc1, ...) was running at %d of them", l[1], l[int((NR + 1) / 2)], l[NR], NR, busy + 0 }' || true)
    mkdir -p "$(dirname "$RESULTS")"
    {
        echo "# buildfs snapshot-mount benchmark"
        echo
        if [[ $status != complete ]]; then echo "**INCOMPLETE RUN: $status**"; echo; fi
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), run took $(( ($(date +%s) - RUN_START) / 60 )) min"
        bench_machine_lines "$BENCH_DIR/work"
        echo "- open-file limit of the shell and so of the daemon: soft $(ulimit -Sn), hard $(ulimit -Hn) (no CAP_SYS_RESOURCE here: the daemon cannot raise it)"
        echo "- machine load during the run: ${load:-not sampled}"
        echo "- buildfs: ${version:-version unknown}, ${BUILDFS_INFO:-binary \`$BUILDFS\`}; repo at the start of the run: $REVISION"
        echo "- zstd $(zstd --version | grep -o 'v[0-9.]*' | head -n 1), $(tar --version | head -n 1), $(gcc --version | head -n 1)"
        echo "- rounds: $ROUNDS (make: $MAKE_ROUNDS), alternating: odd rounds buildfs first, even rounds the baseline first$( (( QUICK )) && echo '; --quick sizes')"
        for s in "${SIZES[@]}"; do
            if [[ -f $DATA/$s.archive_bytes ]]; then echo "- $s snapshot: $(size_line "$s")"; fi
        done
        if [[ -f $DATA/proj.desc ]]; then echo "- make project: zstd's C library from the python-zstd sdist (make-build-tree.sh): $(cat "$DATA/proj.desc")"; fi
        echo
        echo "## Results (medians)"
        echo
        echo "| measurement | buildfs | baseline | ratio | target | pass |"
        echo "| --- | ---: | ---: | ---: | ---: | --- |"
        if has mount_cold_big; then
            row "1a. mount --from big snapshot until usable (cold caches) vs zstd -d \| tar -x (cold)" mount_cold_big extract_big time "abs <= 0.2"
            row "1b. the same, 10× smaller snapshot" mount_cold_small extract_small time "abs <= 0.2"
            size_ratio_row
            row "1d. mount --from big, warm caches vs extract (cold)" mount_warm_big extract_big time -
        fi
        if has commit_change_big; then
            row "2a. commit after appending to one file of big vs tar \| zstd -T0 -3 of the tree" commit_change_big tar_save_big time "abs <= 1"
            row "2b. commit of big, nothing touched vs tar \| zstd -T0 -3" commit_noop_big tar_save_big time "abs <= 1"
            row "2c. (info) commit after appending to one file of small vs tar \| zstd" commit_change_small tar_save_small time -
            row "2d. (info) commit of small, nothing touched vs tar \| zstd" commit_noop_small tar_save_small time -
        fi
        if has read_cold_big; then
            for s in "${SIZES[@]}"; do
                row "3. read all of $s, cold (fresh mount) vs zstd -d of its tar.zst (cold)" "read_cold_$s" "zstd_cold_$s" tput ">= 0.8" "$s"
                row "3. read all of $s, warm (2nd read) vs native 2nd read" "read_warm_$s" "native_warm_$s" tput ">= 0.8" "$s"
                row "3. (info) read all of $s, 3rd read vs native 2nd read" "read_again_$s" "native_warm_$s" tput - "$s"
                row "3. (info) native cold read of $s vs zstd -d (cold)" "native_cold_$s" "zstd_cold_$s" tput - "$s"
            done
        fi
        if has make_total_buildfs; then
            row "4. make clean + make -j$MAKE_JOBS on a mount over the project's snapshot vs plain dir" make_total_buildfs make_total_native time "<= 1.05"
            row "4. (info) make -j$MAKE_JOBS alone" make_buildfs make_native time -
            row "4. (info) make clean alone" make_clean_buildfs make_clean_native time -
        fi
        echo
        echo "Ratios: times are buildfs / baseline; read rows compare throughputs (baseline time / buildfs"
        echo "time, both over the tree's file bytes), so ≥ targets are throughput ratios. Targets 1a, 1b and 2"
        echo "are absolute (seconds); their baseline column shows what the tar.zst way costs for the same job."
        echo
        echo "## Method"
        echo
        cat <<EOF
- Trees: \`snapshot-make-tree.py\` (scale $BIG_SCALE and $SMALL_SCALE) copies real content: headers and
  sources from /usr/include, /usr/share/perl and Python (≤ 64 KiB each, a header line makes every copy
  unique), object-file-sized pieces (2-128 KiB) of ELF libraries, and copies of the machine's 2-48 MiB
  ELF binaries with 8 bytes changed in every 64 KiB (so copies do not dedup). Each tree is imported into
  its own fresh store, archived with \`tar -cf - -C TREE . | zstd -T0 -3\`, and exported with
  \`buildfs export\` into the plain directory used as the native baseline (all untimed).
- Timing: wall clock (\`\$EPOCHREALTIME\`) around one command; \`sync\` before each, outside the timed
  region. "Cold" means \`sync; echo 3 > /proc/sys/vm/drop_caches\` right before the command (page cache,
  dentries and inodes dropped: store, archive, binary and libraries come from the disk).
- **1. mount**: a fresh upper directory and mountpoint each time; timed \`buildfs mount MP --upper DIR
  --from KEY --store S && stat MP\`, caches dropped before (1a, 1b) or not (1d, mounted right after 1a's
  unmount). Checked: the root shows the tree. Baseline: \`zstd -d -q -c T.tar.zst | tar -xf - -C NEW_DIR\`,
  caches dropped before (tar returns once the files are in the page cache; writeback is not included).
- **2. commit**: on a fresh mount of the snapshot (warm), \`buildfs commit MP --key K\` with nothing
  touched (2b, 2d), and on another fresh mount after \`echo LINE >> MP/DEEP_FILE\` (2a, 2c; the append
  hydrates that file; DEEP_FILE is the deepest source, in big \`$(cat "$DATA/big.deep" 2>/dev/null || echo '?')\`).
  Checked in round 1 by mounting the new snapshot: $(paste -sd';' "$DATA/commit.check" 2>/dev/null || echo 'not checked').
  Baseline: what a CI cache save does, \`tar -cf - -C NATIVE . | zstd -T0 -3 -q > NEW.tar.zst\` of the
  native copy (warm page cache).
- **3. read**: \`cd DIR && find . -type f -print0 | xargs -0 cat > /dev/null\` (one reader, like the
  single-threaded \`zstd -d\`; \`tar -cf /dev/null\` is not used because GNU tar skips reading file
  contents when the archive is /dev/null). buildfs: a fresh mount, caches dropped, read (cold), read
  again through the same mount (warm), and a third time (info: the second read asks for every file's
  attributes again, since the kernel drops a FUSE file's atime after reading it from the daemon).
  Baselines: \`zstd -d -q -c T.tar.zst > /dev/null\` with caches
  dropped; the native copy read after dropping caches (info row) and right after (warm baseline).
  A read that fails (any file or directory unreadable) is a failed measurement.
- **4. make**: the project snapshot holds sources plus the build/ outputs of an earlier build (as a CI
  cache would). buildfs: fresh mount over it; native: \`buildfs export\` of it into a fresh directory
  (untimed). Timed separately and summed: \`make -C DIR clean\` then \`make -C DIR -j$MAKE_JOBS CC=gcc\`
  (-O2 -g, every .c to .o with .d files, libzstd.a, libzstd.so.1, a linked program; checked: the program
  runs). An untimed native build first warms the compiler.
- Nothing is deleted while measuring: finished directories move into a trash directory deleted at the
  end (ext4 here slows file creation for minutes after bulk deletions, see lib.sh), and timing starts
  only once the last bulk deletion by any bench script is $SETTLE_SECONDS s old.
EOF
        echo
        echo "## Every round"
        echo
        echo "Wall seconds in run order; daemon CPU (user+sys of the buildfs daemon during the command) where measured."
        echo
        echo "| measurement | rounds | median | daemon CPU (median) |"
        echo "| --- | --- | ---: | ---: |"
        for s in "${SIZES[@]}"; do
            detail "mount_cold_$s" "mount --from $s, cold"
            detail "mount_warm_$s" "mount --from $s, warm"
            detail "extract_$s" "zstd -d \| tar -x of $s, cold"
        done
        for s in "${SIZES[@]}"; do
            detail "commit_change_$s" "commit $s, one file appended"
            detail "commit_noop_$s" "commit $s, nothing touched"
            detail "tar_save_$s" "tar \| zstd -T0 -3 of $s"
        done
        for s in "${SIZES[@]}"; do
            detail "read_cold_$s" "read $s through the mount, cold"
            detail "read_warm_$s" "read $s through the mount, warm"
            detail "read_again_$s" "read $s through the mount, 3rd time"
            detail "zstd_cold_$s" "zstd -d of $s's tar.zst, cold"
            detail "native_cold_$s" "read native $s, cold"
            detail "native_warm_$s" "read native $s, warm"
        done
        detail make_clean_buildfs "make clean, buildfs"
        detail make_clean_native "make clean, native"
        detail make_buildfs "make -j$MAKE_JOBS, buildfs"
        detail make_native "make -j$MAKE_JOBS, native"
        echo
        echo "## Notes"
        echo
        if [[ -s $DATA/unit_failures ]]; then
            echo "- **failed units** (the error is in \`bench/work/snapshot-mount.log\`):"
            sed 's/^/  - /' "$DATA/unit_failures"
        fi
        for s in "${SIZES[@]}"; do
            if [[ -f $DATA/commit_change_$s.out ]]; then echo "- \`buildfs commit\` output, $s, one file appended (round 1): \`$(cat "$DATA/commit_change_$s.out")\`"; fi
            if [[ -f $DATA/commit_noop_$s.out ]]; then echo "- \`buildfs commit\` output, $s, nothing touched (round 1): \`$(cat "$DATA/commit_noop_$s.out")\`"; fi
        done
        for s in "${SIZES[@]}"; do
            if [[ -f $DATA/mount_upper_entries_$s ]]; then echo "- entries in the upper directory right after \`mount --from $s\` (laid out at mount time): $(cat "$DATA/mount_upper_entries_$s")"; fi
        done
        for s in "${SIZES[@]}"; do
            [[ -f $DATA/$s.import ]] && echo "- import of $s (setup): \`$(cat "$DATA/$s.import")\`"
            if [[ -s $DATA/read_stats_$s.json ]]; then
                echo "- mount counters after reading $s (round 1): $(python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))["mount"]; print(", ".join("%s %s" % (k, m[k]) for k in ("bytesServedFromStore", "chunkCacheMisses", "chunkCacheHits", "directoriesExpanded", "filesCopiedUp") if k in m))' "$DATA/read_stats_$s.json" 2>/dev/null || echo '?'); daemon: $(cat "$DATA/read_daemon_$s" 2>/dev/null)"
            fi
            if [[ -f $DATA/read_error_$s ]]; then
                echo "- **reading $s through the mount failed**; first errors and the daemon's descriptors:"
                sed 's/^/  - /' "$DATA/read_error_$s"
            fi
        done
        for s in "${SIZES[@]}"; do
            [[ -s $DATA/perf-$s.txt ]] || continue
            echo
            echo "### Profile of one cold read of $s (\`perf record -a -g\`, both cores)"
            echo
            echo '```'
            cat "$DATA/perf-$s.txt"
            echo '```'
        done
    } >"$RESULTS"
    log "report written to $RESULTS"
}

# ------------------------------------------------------------------ driver --

selected() { [[ " ${GROUPS_SEL[*]} " == *" $1 "* ]]; }

parse_args() {
    local only=""
    while (( $# > 0 )); do
        case $1 in
            --quick) ;;
            --report-only) REPORT_ONLY=1 ;;
            --only) [[ $# -ge 2 ]] || usage; only=$2; shift ;;
            --only=*) only=${1#--only=} ;;
            --rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; ROUNDS=$2; MAKE_ROUNDS=$2; shift ;;
            -h|--help) usage ;;
            *) echo "unknown argument: $1" >&2; usage ;;
        esac
        shift
    done
    GROUPS_SEL=()
    local item
    for item in ${only//,/ }; do
        [[ " ${ALL_GROUPS[*]} " == *" $item "* ]] || { echo "unknown group: $item" >&2; usage; }
        GROUPS_SEL+=("$item")
    done
    (( ${#GROUPS_SEL[@]} )) || GROUPS_SEL=("${ALL_GROUPS[@]}")
}

check_prerequisites() {
    local tool
    for tool in tar zstd make gcc python3 find findmnt awk join; do
        command -v "$tool" >/dev/null || die "missing tool: $tool"
    done
    [[ -c /dev/fuse ]] || die "no /dev/fuse"
    [[ -w /proc/sys/vm/drop_caches ]] || die "cannot drop caches (run as root)"
    [[ -x $BUILDFS ]] || die "no buildfs binary at $BUILDFS (set BUILDFS)"
    "$BUILDFS" commit --help >/dev/null 2>&1 || die "$BUILDFS has no commit command (build a newer one, set BUILDFS)"
}

RUN_STATUS="interrupted"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    unmount_all || true
    if [[ -d $DATA ]] && [[ -n $(find "$DATA" -type f -name '*_*' -print -quit) ]]; then
        if [[ $RUN_STATUS != complete ]]; then
            RUN_STATUS="stopped early (exit $rc), see $LOG"
            RESULTS=${RESULTS%.md}.incomplete.md   # the last complete report stays
        fi
        write_report "$RUN_STATUS" || true
    fi
    if [[ $KEEP_WORK == 1 ]]; then
        log "keeping $WORK_ROOT (KEEP_WORK=1)"
    elif findmnt -rn -o TARGET | grep -q "^$WORK_ROOT/"; then
        log "something is still mounted under $WORK_ROOT: not deleting it"
    elif [[ -d $WORK_ROOT ]]; then
        log "deleting $WORK_ROOT"
        bench_bulk_delete "$WORK_ROOT"
    fi
    exit "$rc"
}

main() {
    REPORT_ONLY=0
    parse_args "$@"
    if (( REPORT_ONLY )); then
        [[ -f $DATA/run_info ]] || die "no numbers in $DATA to report"
        { read -r RUN_START; read -r REVISION; read -r BUILDFS_INFO; } <"$DATA/run_info"
        write_report "written again with --report-only from the numbers in $DATA; see there which measurements ran"
        return
    fi
    (( QUICK || ROUNDS >= 3 )) || echo "warning: fewer than 3 rounds" >&2
    mkdir -p "$BENCH_DIR/work"
    : >"$LOG"
    check_prerequisites
    RUN_START=$(date +%s)
    if findmnt -rn -o TARGET | grep -q "^$WORK_ROOT/"; then
        die "something is mounted under $WORK_ROOT (an earlier run?): unmount it first"
    fi
    if [[ -e $WORK_ROOT ]]; then bench_bulk_delete "$WORK_ROOT"; fi
    rm -rf "$DATA"
    mkdir -p "$DATA" "$INPUTS" "$RUNS"
    : >"$MOUNTS_FILE"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "groups: ${GROUPS_SEL[*]}; rounds: $ROUNDS (make: $MAKE_ROUNDS); log: $LOG"

    # The binary is copied, so that a rebuild during the run cannot mix versions.
    REVISION=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    if ! git -C "$REPO_DIR" diff --quiet HEAD 2>/dev/null; then REVISION="$REVISION + uncommitted changes"; fi
    BUILDFS_INFO=$(bench_binary_line "$BUILDFS")
    cp "$BUILDFS" "$INPUTS/buildfs"
    printf '%s\n' "$RUN_START" "$REVISION" "$BUILDFS_INFO" >"$DATA/run_info"
    BUILDFS=$INPUTS/buildfs

    local size
    for size in "${SIZES[@]}"; do prepare_tree "$size"; done
    if selected mount || selected commit || selected read; then
        for size in "${SIZES[@]}"; do prepare_snapshot "$size"; done
    fi
    if selected make; then prepare_project; fi
    settle_wait

    if selected mount; then group_mount; fi
    if selected commit; then group_commit; fi
    if selected read; then
        group_read
        for size in "${SIZES[@]}"; do
            local a b
            a=$(med "read_cold_$size"); b=$(med "zstd_cold_$size")
            if [[ $PROFILE == always ]] || { [[ $PROFILE == 1 ]] &&
                awk -v a="$a" -v b="$b" 'BEGIN { exit !(a == "" || b / a < 0.8) }'; }; then
                profile_cold_read "$size"
            fi
        done
    fi
    if selected make; then group_make; fi
    RUN_STATUS=complete
}

main "$@"
