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
QUICK=0
for arg in "$@"; do [[ $arg == --quick ]] && QUICK=1; done
if (( QUICK )); then SETTLE_SECONDS=${SETTLE_SECONDS:-0}; fi
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

if (( QUICK )); then RESULTS=${RESULTS:-$BENCH_DIR/work/snapshot-mount-quick.md}; fi
bench_paths snapshot-mount
KEEP_WORK=${KEEP_WORK:-0}
TREES=$BENCH_DIR/work/snapshot-trees       # cached inputs, kept between runs
LOG=$BENCH_DIR/work/snapshot-mount.log     # every command's output
DATA=${DATA:-$BENCH_DIR/work/snapshot-mount-data}   # raw numbers, kept after the run
MAKE_JOBS=${MAKE_JOBS:-2}
PROFILE=${PROFILE:-1}
REVISION="unknown"   # the repo revision when the run started
ALL_GROUPS=(mount commit read make)

if (( QUICK )); then
    ROUNDS=${ROUNDS:-1}; MAKE_ROUNDS=${MAKE_ROUNDS:-1}
    BIG_SCALE=${BIG_SCALE:-0.05}; SMALL_SCALE=${SMALL_SCALE:-0.005}
else
    ROUNDS=${ROUNDS:-5}; MAKE_ROUNDS=${MAKE_ROUNDS:-3}
    BIG_SCALE=${BIG_SCALE:-1}; SMALL_SCALE=${SMALL_SCALE:-0.1}
fi
SIZES=(big small)

INPUTS=$WORK_ROOT/inputs     # stores, archives, native copies, the binary
RUNS=$WORK_ROOT/runs         # upper dirs, mountpoints, extract dirs
TRASH=$WORK_ROOT/trash       # what the run is done with; deleted at the end
BENCH_MOUNTS=$WORK_ROOT/mounted   # live mounts (lib.sh)
BENCH_LOAD_LOG=$DATA/load

# ---------------------------------------------------------------- plumbing --

die() { bench_log "snapshot-mount.sh: $*"; exit 1; }
usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

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

# ------------------------------------------------------------------ mounts --

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
    bench_mount_add "$MP" 0 "$BUILDFS"
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
        bench_log "reusing the $size tree $dir"
    else
        if [[ -e $dir || -e $dir.json ]]; then bench_bulk_delete "$dir" "$dir.json"; fi
        mkdir -p "$TREES"
        bench_log "generating the $size tree (scale $(scale_of "$size")) in $dir"
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
    bench_log "$size: import, tar.zst, export to a plain directory (untimed)"
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
    bench_log "the zstd project (make-build-tree.sh into $tree; reused when unchanged)"
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
    bench_measure "mount_cold_$size" "$round" 0 mount_from "$MP" "$UPPER" "$store" "$size"
    [[ -d $MP/src && -d $MP/bin ]] || { bench_log "the $size mount does not show src/ and bin/"; return 1; }
    if (( round == 1 )); then find "$UPPER" | wc -l >"$DATA/mount_upper_entries_$size"; fi
    bench_unmount "$MP"
    new_mount "mount-warm-$size-r$round"
    bench_measure "mount_warm_$size" "$round" 0 mount_from "$MP" "$UPPER" "$store" "$size"
    bench_unmount "$MP"
}

unit_extract() {
    local size=$1 round=$2 dir=$RUNS/extract-$1-r$2
    drop_caches
    bench_measure "extract_$size" "$round" 0 extract "$INPUTS/$size.tar.zst" "$dir"
    retire "$dir"
}


# 2. Commit of a fresh mount with nothing touched, and after appending a line
# to one file deep in the tree; vs tar | zstd -T0 -3 of the whole native tree
# (what a CI cache save does). Warm caches (a build just ran).
unit_commit_noop() {
    local size=$1 round=$2 store=$INPUTS/store-$1
    new_mount "commit-noop-$size-r$round"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    bench_measure "commit_noop_$size" "$round" 0 commit "$MP" "noop-$round" "$store"
    if (( round == 1 )); then tail -n 1 "$BENCH_OUT" >"$DATA/commit_noop_$size.out"; fi
    bench_unmount "$MP"
}

unit_commit_change() {
    local size=$1 round=$2 store=$INPUTS/store-$1 deep
    deep=$(cat "$DATA/$size.deep")
    new_mount "commit-change-$size-r$round"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    change_line "$round" >>"$MP/$deep"
    bench_measure "commit_change_$size" "$round" 0 commit "$MP" "change-$round" "$store"
    if (( round == 1 )); then tail -n 1 "$BENCH_OUT" >"$DATA/commit_change_$size.out"; fi
    bench_unmount "$MP"
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
    bench_log "commit check ($size): $verdict"
    bench_unmount "$MP"
}

unit_save() {
    local size=$1 round=$2
    bench_measure "tar_save_$size" "$round" 0 archive "$INPUTS/native-$size" "$RUNS/save-$size-r$round.tar.zst"
    retire "$RUNS/save-$size-r$round.tar.zst"
}


group_commit() {
    local size
    for size in "${SIZES[@]}"; do read_all "$INPUTS/native-$size"; done   # tar reads a warm tree
    run_group commit "$ROUNDS"
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
    pid=$(bench_mount_pid "$MP")
    drop_caches
    if bench_measure "read_cold_$size" "$round" "$pid" read_all "$MP"; then
        bench_measure "read_warm_$size" "$round" "$pid" read_all "$MP" || true
        bench_measure "read_again_$size" "$round" "$pid" read_all "$MP" || true
    else
        bench_record "read_warm_$size" "$round" fail
        bench_record "read_again_$size" "$round" fail
        cp "$BENCH_OUT.err" "$DATA/read_errors_$size.r$round"
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
    bench_unmount "$MP"
}

unit_read_baseline() {
    local size=$1 round=$2
    drop_caches
    bench_measure "zstd_cold_$size" "$round" 0 decompress "$INPUTS/$size.tar.zst"
    drop_caches
    bench_measure "native_cold_$size" "$round" 0 read_all "$INPUTS/native-$size"
    bench_measure "native_warm_$size" "$round" 0 read_all "$INPUTS/native-$size"
}

# One extra, untimed cold read under `perf record -a` (both cores: the
# reader, the kernel's FUSE and the daemon), summarized into the report.
profile_cold_read() {
    local size=$1 store=$INPUTS/store-$1 perf_pid pid out=$DATA/perf-$1
    command -v perf >/dev/null || { bench_log "no perf: not profiling"; return 0; }
    bench_log "profiling a cold read of $size with perf (untimed)"
    new_mount "profile-$size"
    mount_from "$MP" "$UPPER" "$store" "$size" >>"$LOG" 2>&1
    pid=$(bench_mount_pid "$MP")
    drop_caches
    perf record -a -g -F 499 -o "$WORK_ROOT/perf.data" >>"$LOG" 2>&1 &
    perf_pid=$!
    sleep 1
    read_all "$MP" >>"$LOG" 2>&1 || true
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    bench_unmount "$MP"
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
        pid=$(bench_mount_pid "$MP")
    else
        dir=$RUNS/make-native-r$round
        retire "$dir"; mkdir -p "$dir"
        "$BUILDFS" export "$dir" --from proj --store "$store" >>"$LOG" 2>&1
    fi
    bench_measure "make_clean_$fs" "$round" "$pid" make_clean "$dir"
    bench_measure "make_$fs" "$round" "$pid" make_build "$dir"
    "$dir/build/roundtrip" <"$dir/lib/zstd.h" >>"$LOG" || { bench_log "the program built on $fs does not work"; return 1; }
    if [[ $fs == buildfs ]]; then bench_unmount "$MP"; fi
}

make_side() {   # FS ROUND
    bench_log "make, round $2 of $MAKE_ROUNDS: $1"
    bench_unit "make_clean_$1 make_$1" unit_make "$1" "$2"
}

group_make() {
    local dir=$RUNS/make-warmup
    bench_log "make warm-up (untimed, native)"
    mkdir -p "$dir"
    {
        "$BUILDFS" export "$dir" --from proj --store "$INPUTS/store-proj"
        make_clean "$dir"
        make_build "$dir"
    } >>"$LOG" 2>&1
    bench_round_robin "$MAKE_ROUNDS" make_side buildfs native
    # The target row: clean + build, per round.
    local fs
    for fs in buildfs native; do
        join <(sort "$DATA/make_clean_$fs") <(sort "$DATA/make_$fs") |
            awk '{ print $1, ($2 == "fail" || $3 == "fail") ? "fail" : $2 + $3 }' | sort -n >"$DATA/make_total_$fs"
    done
}

# The units of each side of a group's round, "FUNCTION NAMES..." each (@
# stands for the size), ';' between units.
declare -A UNITS=(
    [mount-buildfs]="unit_mount mount_cold_@ mount_warm_@"
    [mount-baseline]="unit_extract extract_@"
    [commit-buildfs]="unit_commit_noop commit_noop_@;unit_commit_change commit_change_@"
    [commit-baseline]="unit_save tar_save_@"
    [read-buildfs]="unit_read_buildfs read_cold_@ read_warm_@ read_again_@"
    [read-baseline]="unit_read_baseline zstd_cold_@ native_cold_@ native_warm_@"
)

# run_group GROUP ROUNDS: the group's rounds, round robin (lib.sh) over two
# sides, buildfs and the baseline (odd rounds buildfs first); a side's turn
# runs its units over both sizes.
run_group() { GROUP=$1; bench_round_robin "$2" run_side buildfs baseline; }
run_side() {   # SIDE ROUND
    local size unit fn names
    local -a units
    IFS=';' read -ra units <<<"${UNITS[$GROUP-$1]}"
    for size in "${SIZES[@]}"; do
        bench_log "$GROUP $size, round $2 of $ROUNDS: $1"
        for unit in "${units[@]}"; do
            read -r fn names <<<"${unit//@/$size}"
            bench_unit "$names" "$fn" "$size" "$2"
        done
    done
}

# ------------------------------------------------------------------ report --

fmt_mb() { awk -v v="$1" 'BEGIN { printf "%.0f MB", v / 1e6 }'; }
# throughput of SIZE's file bytes in SECONDS
fmt_tput() { awk -v s="$2" -v b="$(cat "$DATA/$1.bytes")" 'BEGIN { if (s == "") print "—"; else printf "%.0f MB/s", b / 1e6 / s }'; }

# cell NAME KIND [SIZE]: the median, formatted, with failures noted
cell() {
    if [[ $2 == tput ]]; then bench_cell "$1" "fmt_tput $3"; else bench_cell "$1" bench_fmt_time; fi
}

# row LABEL OURS BASE KIND TARGET [SIZE]: one table row.
#   KIND time: ratio = ours / base; tput: ratio = base time / our time
#   TARGET "<= R" / ">= R" on the ratio, "abs <= S" on our median seconds
row() {
    local label=$1 ours=$2 base=$3 kind=$4 target=$5 size=${6:-} a r
    a=$(bench_med "$ours")
    r=$(bench_time_ratio "$kind" "$a" "$(bench_med "$base")")
    echo "| $label | $(cell "$ours" "$kind" "$size") | $(cell "$base" "$kind" "$size") | ${r:+${r}×} | $(bench_target_shown "$target" s) | $(bench_pass "$target" "$ours" "$r" "$a") |"
}

# size_ratio_row: big vs small mount time (size independence)
size_ratio_row() {
    local a b r
    a=$(bench_med mount_cold_big); b=$(bench_med mount_cold_small)
    r=$(bench_time_ratio time "$a" "$b")
    echo "| 1c. mount time, big / 10× smaller snapshot (size independence) | $(bench_fmt_time "$a") | $(bench_fmt_time "$b") | ${r:+${r}×} | ≤ 1.5× | $(bench_pass "<= 1.5" mount_cold_big "$r" "$a") |"
}

detail() {   # detail NAME LABEL: every round's value, and daemon CPU if any
    local cpu
    [[ -f $DATA/$1 ]] || return 0
    cpu=$(bench_med "$1.cpu")
    echo "| $2 | $(bench_rounds "$1") | $(bench_fmt_time "$(bench_med "$1")") | ${cpu:+$cpu s} |"
}

size_line() {
    local s=$1
    echo "$(cat "$DATA/$s.files") files in $(cat "$DATA/$s.dirs") directories, $(fmt_mb "$(cat "$DATA/$s.bytes")") of file data ($(cat "$DATA/$s.shape")); tar.zst $(fmt_mb "$(cat "$DATA/$s.archive_bytes")"), store $(fmt_mb "$(cat "$DATA/$s.store_bytes")")"
}

has() { [[ -s $DATA/$1 ]]; }

write_report() {
    local status=$1 version s
    version=$("$BUILDFS" --version 2>/dev/null | head -n 1 || true)
    bench_run_header "buildfs snapshot-mount benchmark" "$status" "$BENCH_DIR/work"
    echo "- open-file limit of the shell and so of the daemon: soft $(ulimit -Sn), hard $(ulimit -Hn) (no CAP_SYS_RESOURCE here: the daemon cannot raise it)"
    bench_load_line "side and round"
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
  copies that file up; DEEP_FILE is the deepest source, in big \`$(cat "$DATA/big.deep" 2>/dev/null || echo '?')\`).
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
        if [[ -f $DATA/mount_upper_entries_$s ]]; then echo "- entries in the upper directory right after \`mount --from $s\` (created at mount time): $(cat "$DATA/mount_upper_entries_$s")"; fi
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

main() {
    REPORT_ONLY=0
    parse_args "$@"
    if (( REPORT_ONLY )); then
        [[ -f $DATA/run_info ]] || die "no numbers in $DATA to report"
        { read -r RUN_START; read -r REVISION; read -r BUILDFS_INFO; } <"$DATA/run_info"
        bench_write_report "written again with --report-only from the numbers in $DATA; see there which measurements ran"
        return
    fi
    (( QUICK || ROUNDS >= 3 )) || echo "warning: fewer than 3 rounds" >&2
    mkdir -p "$BENCH_DIR/work"
    : >"$LOG"
    check_prerequisites
    bench_run_begin
    mkdir -p "$INPUTS" "$RUNS"
    bench_log "groups: ${GROUPS_SEL[*]}; rounds: $ROUNDS (make: $MAKE_ROUNDS); log: $LOG"
    REVISION=$(bench_revision)
    bench_copy_binary "$INPUTS"
    printf '%s\n' "$RUN_START" "$REVISION" "$BUILDFS_INFO" >"$DATA/run_info"

    local size
    for size in "${SIZES[@]}"; do prepare_tree "$size"; done
    if selected mount || selected commit || selected read; then
        for size in "${SIZES[@]}"; do prepare_snapshot "$size"; done
    fi
    if selected make; then prepare_project; fi
    bench_wait_for_settle

    if selected mount; then run_group mount "$ROUNDS"; fi
    if selected commit; then group_commit; fi
    if selected read; then
        run_group read "$ROUNDS"
        for size in "${SIZES[@]}"; do
            local a b
            a=$(bench_med "read_cold_$size"); b=$(bench_med "zstd_cold_$size")
            if [[ $PROFILE == always ]] || { [[ $PROFILE == 1 ]] &&
                awk -v a="$a" -v b="$b" 'BEGIN { exit !(a == "" || b / a < 0.8) }'; }; then
                profile_cold_read "$size"
            fi
        done
    fi
    if selected make; then group_make; fi
    BENCH_RUN_STATUS=complete
}

main "$@"
