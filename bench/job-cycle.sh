#!/usr/bin/env bash
# Job-cycle benchmark: a CI job on a persistent runner, end to end: restore
# the build tree, an incremental build after a one-file change, save it again.
# Three ways, side by side in one run (alternating rounds, medians, ratios):
#
#   buildfs  `buildfs mount --from PREFIX` (the newest snapshot whose key
#            starts with PREFIX) on a fresh upper dir at a stable path, the
#            build on the mount, `buildfs commit --key K`, `buildfs umount`
#   tar      `zstd -d | tar -x` of the last job's archive into a fresh dir
#            (always at the same path), the same build, `tar -c | zstd -T0 -3`
#   none     no cache: the project's sources copied into a fresh dir (a
#            checkout) and built from clean; nothing restored or saved
#
#   bench/job-cycle.sh [--rounds N] [--trees 300,1200] [--fs buildfs,tar,none]
#                      [--before OLD_BUILDFS]
#
# The build is `make-build-tree.sh --change R DIR` in round R: two sources of
# the project get a line appended and `make -j$(nproc)` runs (ccache off).
# Each way restores what its own previous job saved, as a runner does: the
# trees of all ways hold the same changes at the same round. The trees
# (bench_build_tree): ~300 MB (make-build-tree.sh: a built C project and a
# toolchain copy) and ~1.2 GB (the same plus a sysroot).
#
# Nothing is synced or deleted between the steps of a job: the job's time is
# the sum of its steps, as a CI job would see it; `sync` runs before each job
# (its writeback left behind is reported, not counted). --before adds
# `buildfs-before` (an older binary, its own store) for A/B runs.
#
# Environment: BUILDFS (default: .build-release/buildfs, from scripts/build-release), ROUNDS (5),
# WORK_ROOT (bench/work/job-cycle, removed at the end unless KEEP_WORK=1),
# TREES_DIR (bench/work/job-cycle-trees: the built trees, kept), RESULTS.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
BUILDFS=${BUILDFS:-$REPO_DIR/.build-release/buildfs}
bench_paths job-cycle
ROUNDS=${ROUNDS:-5}
KEEP_WORK=${KEEP_WORK:-0}
TREES_DIR=${TREES_DIR:-$BENCH_DIR/work/job-cycle-trees}
LOG=$BENCH_DIR/work/job-cycle.log
FS_LIST=(buildfs tar none)
SIZES=(300 1200)

while (( $# )); do
    if [[ $1 == --trees ]]; then IFS=, read -ra SIZES <<<"$2"
    else bench_fs_option "$1" "${2:-}" || { sed -n '14,15p' "$0" >&2; exit 2; }; fi
    shift 2
done
bench_check_fs_list
(( ROUNDS >= 1 )) || { echo "--rounds must be at least 1" >&2; exit 2; }

DATA=$WORK_ROOT/data
TRASH=$WORK_ROOT/trash
STABLE=$WORK_ROOT/work        # the buildfs mountpoint
export CCACHE_DISABLE=1       # every way compiles what changed
BENCH_LOAD_LOG=$DATA/load

trap 'bench_log "job-cycle.sh: failed at line $LINENO; see $LOG"' ERR
run() { echo "+ $*" >>"$LOG"; "$@" >>"$LOG" 2>&1; }
record() { echo "$2" >>"$DATA/$1"; }

cleanup() {
    if findmnt -rn --mountpoint "$STABLE" >/dev/null 2>&1; then
        "$BUILDFS" umount "$STABLE" >>"$LOG" 2>&1 || umount -l "$STABLE" || true
    fi
    if [[ $KEEP_WORK != 1 ]]; then bench_bulk_delete "$WORK_ROOT"; fi
}

# ------------------------------------------------------------------- ways --
# Each way has restore_WAY, build (shared) and save_WAY; a job runs them in
# turn and records each step's seconds. JOB_DIR is where the job builds.

binary_of() { if [[ $1 == buildfs-before ]]; then echo "$BUILDFS_BEFORE"; else echo "$BUILDFS"; fi; }

restore_buildfs() {   # WAY SIZE
    local upper=$WORK_ROOT/upper-$1-$2-$ROUND
    mkdir -p "$upper" "$STABLE"
    run "$(binary_of "$1")" mount "$STABLE" --upper "$upper" --from "t$2-$1-" --store "$WORK_ROOT/store-$1-$2"
    JOB_DIR=$STABLE
}
save_buildfs() {
    local key=t$2-$1-r$ROUND
    (( ROUND > 0 )) || key=t$2-$1-warmup
    run "$(binary_of "$1")" commit "$STABLE" --key "$key" --store "$WORK_ROOT/store-$1-$2"
    SAVE_SPLIT=$EPOCHREALTIME   # commit | umount
    run "$(binary_of "$1")" umount "$STABLE"
}

restore_tar() {
    JOB_DIR=$WORK_ROOT/tar-job-$2
    mkdir -p "$JOB_DIR"
    zstd -d -q <"$WORK_ROOT/archives/t$2-tar-last.tar.zst" | tar -xf - -C "$JOB_DIR"
}
save_tar() {
    local archive=$WORK_ROOT/archives/t$2-tar-r$ROUND.tar.zst
    (( ROUND > 0 )) || archive=$WORK_ROOT/archives/t$2-tar-warmup.tar.zst
    tar -cf - -C "$JOB_DIR" . | zstd -T0 -3 -q >"$archive"
    ln -sfn "$(basename "$archive")" "$WORK_ROOT/archives/t$2-tar-last.tar.zst"
}

restore_none() {
    local tree=$TREES_DIR/$2
    JOB_DIR=$WORK_ROOT/none-job-$2
    mkdir -p "$JOB_DIR/project"
    cp -a "$tree/project/Makefile" "$tree/project/lib" "$tree/project/tools" "$JOB_DIR/project/"
    echo changes=0 >"$JOB_DIR/.bench-tree-state"
}
save_none() { :; }

build() { run "$BENCH_DIR/make-build-tree.sh" --change "$ROUND" "$JOB_DIR"; }

# job WAY ROUND: one job of WAY on tree $SIZE. Round 0 is the untimed
# warm-up, which also keeps the mount's counters (`buildfs stats`). The
# job's dir of the last round is moved aside first (nothing is deleted while
# measuring: see bench_bulk_delete).
job() {
    local way=$1 kind=$1 dir t0 t1 t2 t3 t4 name
    ROUND=$2 SAVE_SPLIT=
    [[ $way == buildfs-before ]] && kind=buildfs
    for dir in "$WORK_ROOT/tar-job-$SIZE" "$WORK_ROOT/none-job-$SIZE"; do
        if [[ -e $dir ]]; then mv "$dir" "$TRASH/$(basename "$dir")-$way-$ROUND-$RANDOM"; fi
    done
    sync
    t0=$EPOCHREALTIME
    "restore_$kind" "$way" "$SIZE"
    t1=$EPOCHREALTIME
    build
    t2=$EPOCHREALTIME
    if [[ $kind == buildfs ]] && (( ROUND == 0 )); then
        sleep 1.2   # the daemon publishes its counters once a second
        "$(binary_of "$way")" stats "$STABLE" --json >"$DATA/t$SIZE-$way.stats" 2>>"$LOG" || true
    fi
    "save_$kind" "$way" "$SIZE"
    t3=$EPOCHREALTIME
    sync
    t4=$EPOCHREALTIME
    (( ROUND > 0 )) || return 0
    name=t$SIZE-$way
    record "$name-restore" "$(bench_elapsed "$t0" "$t1")"
    record "$name-build" "$(bench_elapsed "$t1" "$t2")"
    record "$name-save" "$(bench_elapsed "$t2" "$t3")"
    record "$name-job" "$(bench_elapsed "$t0" "$t3")"
    record "$name-sync" "$(bench_elapsed "$t3" "$t4")"
    if [[ -n $SAVE_SPLIT ]]; then
        record "$name-commit" "$(bench_elapsed "$t2" "$SAVE_SPLIT")"
        record "$name-umount" "$(bench_elapsed "$SAVE_SPLIT" "$t3")"
    fi
}

# prepare SIZE: the tree, and each way's first cache entry made from it (an
# import into a fresh store, a tar.zst).
prepare() {
    local tree=$TREES_DIR/$1 way
    bench_log "tree $1: building or reusing $tree"
    bench_build_tree "$1" "$tree" >>"$LOG" 2>&1
    record "t$1-tree" "$(du -sb "$tree" | cut -f1) bytes, $(find "$tree" -type f | wc -l) files, $(find "$tree" -type d | wc -l) directories"
    mkdir -p "$WORK_ROOT/archives"
    for way in "${FS_LIST[@]}"; do
        case $way in
            buildfs*) run "$(binary_of "$way")" import "$tree" --key "t$1-$way-r0" --store "$WORK_ROOT/store-$way-$1" ;;
            tar) tar -cf - -C "$tree" . | zstd -T0 -3 -q >"$WORK_ROOT/archives/t$1-tar-r0.tar.zst"
                 ln -sfn "t$1-tar-r0.tar.zst" "$WORK_ROOT/archives/t$1-tar-last.tar.zst" ;;
        esac
    done
}

# ways_for SIZE: the ways measured on tree SIZE, one a line. The no-cache job
# builds the same project from the same sources whatever the tree's size:
# it runs with the first tree only, and its numbers stand for all.
ways_for() {
    local way
    for way in "${FS_LIST[@]}"; do
        [[ $way == none && $1 != "${SIZES[0]}" ]] || echo "$way"
    done
}

# ------------------------------------------------------------------ report --
label() { case $1 in tar) echo "tar way" ;; none) echo "no cache" ;; *) echo "$1" ;; esac; }
med() { bench_median "$(data_file "$1")" 2>/dev/null || echo 0; }
# data_file NAME: $DATA/NAME; the no-cache way's are the first tree's.
data_file() {
    local name=$1
    if [[ $name == t*-none-* ]]; then name=t${SIZES[0]}-none-${name#t*-none-}; fi
    echo "$DATA/$name"
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
values() { paste -sd' ' "$DATA/$1"; }
secs() { awk -v v="$1" 'BEGIN { printf "%.2f s", v }'; }

# The comparison baseline: the tar way when it ran, else the first way.
baseline() { if [[ " ${FS_LIST[*]} " == *" tar "* ]]; then echo tar; else echo "${FS_LIST[0]}"; fi; }

step_table() {   # SIZE
    local size=$1 way step base
    base=$(baseline)
    printf '| step |'; for way in "${FS_LIST[@]}"; do printf ' %s |' "$(label "$way")"; done
    for way in "${FS_LIST[@]}"; do [[ $way == "$base" ]] || printf ' %s / %s |' "$(label "$way")" "$(label "$base")"; done
    echo
    printf '| --- |'; for _ in "${FS_LIST[@]}" "${FS_LIST[@]:1}"; do printf ' ---: |'; done; echo
    for step in restore build save job; do
        case $step in
            restore) printf '| restore |' ;; build) printf '| build (change + make) |' ;;
            save) printf '| save |' ;; job) printf '| **whole job** |' ;;
        esac
        for way in "${FS_LIST[@]}"; do printf ' %s |' "$(secs "$(med "t$size-$way-$step")")"; done
        for way in "${FS_LIST[@]}"; do
            [[ $way == "$base" ]] || printf ' %s |' "$(bench_ratio "$(med "t$size-$way-$step")" "$(med "t$size-$base-$step")")"
        done
        echo
    done
}

target_row() {   # LABEL RATIO TARGET
    printf '| %s | %s | ≤ %s | %s |\n' "$1" "$2" "$3" "$(bench_verdict "$2" "$3")"
}

write_report() {
    local size way f job_target
    {
        bench_report_header "Job cycle: restore, incremental build, save" "$ROUNDS" "$WORK_ROOT"
        echo "- $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//'); $(tar --version | head -n 1); $(make --version | head -n 1); $(gcc --version | head -n 1)"
        for size in "${SIZES[@]}"; do echo "- tree ~$size MB: $(cat "$DATA/t$size-tree")"; done
        echo "- method: a persistent runner's job; each way restores what its own last job saved; round R applies"
        echo "  change R (\`make-build-tree.sh --change R\`: two sources edited, \`make -j$(nproc)\`, ccache off);"
        echo "  an untimed warm-up job of every way first; \`sync\` before every job, none inside it; medians"
        echo
        if [[ " ${FS_LIST[*]} " == *" buildfs "* && " ${FS_LIST[*]} " == *" tar "* ]]; then
            echo "| target | ratio (medians) | target | result |"
            echo "| --- | ---: | ---: | --- |"
            for size in "${SIZES[@]}"; do
                job_target=0.5; [[ $size == 300 ]] || job_target=0.2
                target_row "~$size MB: whole job, buildfs / tar way" \
                    "$(bench_ratio "$(med "t$size-buildfs-job")" "$(med "t$size-tar-job")")" "$job_target"
                target_row "~$size MB: build on the mount / on the tar way's native copy" \
                    "$(bench_ratio "$(med "t$size-buildfs-build")" "$(med "t$size-tar-build")")" 1.3
            done
            echo
        fi
        for size in "${SIZES[@]}"; do
            echo "## ~$size MB tree"
            echo
            step_table "$size"
            echo
            for way in "${FS_LIST[@]}"; do
                [[ $way == buildfs* ]] || continue
                echo "- $(label "$way") save = commit $(secs "$(med "t$size-$way-commit")") + umount $(secs "$(med "t$size-$way-umount")") (medians)"
                f=$DATA/t$size-$way.stats
                if [[ -s $f ]]; then
                    echo "- $(label "$way") mount counters after the warm-up job's build: \`$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])).get("mount", {}); print(", ".join(f"{k} {v}" for k, v in sorted(m.items()) if isinstance(v, int)))' "$f")\`"
                fi
            done
            for way in "${FS_LIST[@]}"; do
                case $way in
                    buildfs*) echo "- $(label "$way") store: $(mb "$(du -sb "$WORK_ROOT/store-$way-$size" | cut -f1)") after the import and $(( ROUNDS + 1 )) commits" ;;
                    tar) echo "- tar way: each archive $(mb "$(stat -L -c %s "$WORK_ROOT/archives/t$size-tar-last.tar.zst")") (the last), $(( ROUNDS + 2 )) of them kept" ;;
                esac
            done
            for way in "${FS_LIST[@]}"; do
                if [[ $way == none && $size != "${SIZES[0]}" ]]; then
                    echo "- no cache: not run on this tree; the table repeats the ~${SIZES[0]} MB tree's numbers (the same job: the same project from the same sources)"
                    continue
                fi
                echo "- $(label "$way"), seconds in run order: restore $(values "t$size-$way-restore"); build $(values "t$size-$way-build"); save $(values "t$size-$way-save"); \`sync\` after the job (not counted) $(values "t$size-$way-sync")"
            done
            echo
        done
        echo "Ways: **buildfs** \`buildfs mount STABLE --upper FRESH --from PREFIX\` (the newest snapshot of the"
        echo "way's chain), the build on the mount, \`buildfs commit STABLE --key K\`, \`buildfs umount STABLE\`"
        echo "(which flushes the upper dir to disk); **tar way** \`zstd -d -q < last.tar.zst | tar -xf - -C DIR\`"
        echo "into a fresh DIR at one path, the same build, \`tar -cf - -C DIR . | zstd -T0 -3 -q > new.tar.zst\`;"
        echo "**no cache** the project's sources (Makefile, lib/, tools/, 2 MB) copied into a fresh dir as a checkout"
        echo "would, then the same change and a clean \`make\` of the whole project; the toolchain content of the"
        echo "tree is not restored (the runner's own gcc builds in every way) and nothing is saved."
    } >"$RESULTS"
}

# ------------------------------------------------------------------- main --
for tool in zstd tar make gcc python3; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }; done
mkdir -p "$(dirname "$LOG")" "$(dirname "$RESULTS")"
: >"$LOG"
if [[ -e $WORK_ROOT ]]; then bench_bulk_delete "$WORK_ROOT"; fi
mkdir -p "$DATA" "$TRASH"
trap cleanup EXIT
for SIZE in "${SIZES[@]}"; do prepare "$SIZE"; done
bench_wait_for_settle
for SIZE in "${SIZES[@]}"; do
    mapfile -t ways < <(ways_for "$SIZE")
    bench_log "tree ~$SIZE MB: warm-up job of every way"
    for way in "${ways[@]}"; do job "$way" 0; done
    bench_log "tree ~$SIZE MB: $ROUNDS rounds"
    bench_round_robin "$ROUNDS" job "${ways[@]}"
done
write_report
bench_log "wrote $RESULTS"
cat "$RESULTS"
