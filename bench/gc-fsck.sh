#!/usr/bin/env bash
# gc and fsck at scale: wall time and peak memory of `buildfs fsck`, `buildfs
# gc --dry-run`, the real `buildfs gc` and a `buildfs gc` with nothing to do,
# on a store of >= 200k objects in 50 snapshots.
#
#   bench/gc-fsck.sh [--quick]
#
#   --quick   a small store (1,000 files, 10 snapshots, ~4k objects), no
#             settle wait; the report goes to bench/work/gc-fsck-quick.md
#             unless RESULTS is set
#
# The store: bench/gc-fsck-gen.py writes a tree of FILES small files (1-4 KiB
# of source-like text, each version distinct, so one chunk each) in DIRS leaf
# directories, and the script imports SNAPSHOTS snapshots of it into one
# store, rewriting a different CHANGE percent of the files in place before
# each import. A snapshot adds FILES * CHANGE% chunks, one tree per
# directory and one stat index: 5000 files, 250 dirs, 80%, 50 snapshots make
# 5,262 + 49 * 4,262 = 214,100 objects.
#
# Measured, each under /usr/bin/time -v (wall, peak RSS, CPU), page cache warm:
#   - every import (reported: the first, the median of the rest, the last);
#   - fsck, gc --dry-run --max-size X, gc with no limits (nothing to do):
#     ROUNDS rounds, the three commands in a rotating order, medians;
#   - the real gc --max-size X once, on a `cp -a` copy of the store, then an
#     fsck of the result (once, and it must find no damage).
# X is found before timing by bisection over dry runs: the size that makes gc
# evict half of the snapshots (least recently used = imported first).
#
# Environment: BUILDFS (default <repo>/.build-release/buildfs),
# ROUNDS (3), FILES, DIRS, SNAPSHOTS, CHANGE (80), MIN_OBJECTS (200000; 0
# with --quick), RESULTS, WORK_ROOT (scratch, default bench/work/gc-fsck,
# git-ignored, removed at the end unless KEEP_WORK=1), SETTLE_SECONDS (see
# lib.sh; default 360, 0 with --quick).
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

QUICK=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        -h|--help) usage ;;
        *) echo "gc-fsck.sh: unknown argument '$arg'" >&2; usage ;;
    esac
done
if (( QUICK )); then SETTLE_SECONDS=${SETTLE_SECONDS:-0}; fi
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

BUILDFS=${BUILDFS:-$REPO_DIR/.build-release/buildfs}
ROUNDS=${ROUNDS:-3}
CHANGE=${CHANGE:-80}
WORK_ROOT=${WORK_ROOT:-$BENCH_DIR/work/gc-fsck}
KEEP_WORK=${KEEP_WORK:-0}
LOG=$BENCH_DIR/work/gc-fsck.log        # every command's output; outlives WORK_ROOT
if (( QUICK )); then
    RESULTS=${RESULTS:-$BENCH_DIR/work/gc-fsck-quick.md}
    FILES=${FILES:-1000}; DIRS=${DIRS:-50}; SNAPSHOTS=${SNAPSHOTS:-10}
    MIN_OBJECTS=${MIN_OBJECTS:-0}
else
    RESULTS=${RESULTS:-$BENCH_DIR/results/gc-fsck.md}
    FILES=${FILES:-5000}; DIRS=${DIRS:-250}; SNAPSHOTS=${SNAPSHOTS:-50}
    MIN_OBJECTS=${MIN_OBJECTS:-200000}
fi

TREE=$WORK_ROOT/tree          # the directory that gets imported, changed in place
STORE=$WORK_ROOT/store        # the store of SNAPSHOTS snapshots; never changed after
STORE_GC=$WORK_ROOT/store-gc  # cp -a copy of it for the real gc
EMPTY_STORE=$WORK_ROOT/empty  # for the memory every run takes
DATA=$WORK_ROOT/data          # NAME.wall / NAME.rss / NAME.cpu: one value per run
OUT=$WORK_ROOT/last-output    # output of the last timed command
TIMEV=$WORK_ROOT/last-time    # /usr/bin/time -v report of the last timed command
SLOW_SECONDS=30               # rows slower than this get a perf hint

# ---------------------------------------------------------------- plumbing --

die() { bench_log "gc-fsck.sh: $*"; exit 1; }

on_error() { bench_log "gc-fsck.sh: failed at line $1; last lines of $LOG:"; tail -n 15 "$LOG" >&2; }
trap 'on_error $LINENO' ERR

cleanup() {
    trap - EXIT
    if [[ $KEEP_WORK == 1 ]]; then
        bench_log "keeping $WORK_ROOT (KEEP_WORK=1)"
    elif [[ -d $WORK_ROOT ]]; then
        bench_bulk_delete "$WORK_ROOT"
    fi
}

# seconds_since START: wall seconds since an $EPOCHREALTIME value.
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# timed NAME CMD...: runs CMD after a sync, under /usr/bin/time -v, and
# appends its wall seconds, peak RSS (KiB) and user+sys seconds to
# DATA/NAME.{wall,rss,cpu}. Its output goes to OUT and the log. Fails if it does.
timed() {
    local name=$1 start wall rc=0
    shift
    sync
    cut -d' ' -f1 /proc/loadavg >>"$DATA/loadavg"
    start=$EPOCHREALTIME
    /usr/bin/time -v -o "$TIMEV" "$@" >"$OUT" 2>&1 || rc=$?
    wall=$(seconds_since "$start")
    { echo "\$ $*"; cat "$OUT"; } >>"$LOG"
    (( rc == 0 )) || { bench_log "$name: exit status $rc: $(tail -n 3 "$OUT")"; return 1; }
    echo "$wall" >>"$DATA/$name.wall"
    awk -F': ' '/Maximum resident set size/ { print $2 }' "$TIMEV" >>"$DATA/$name.rss"
    awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f\n", u + s }' "$TIMEV" >>"$DATA/$name.cpu"
    bench_log "$name: ${wall} s, $(tail -n 1 "$DATA/$name.rss") KiB peak RSS: $(tail -n 1 "$OUT")"
}

# median NAME KIND / max NAME KIND / nth NAME KIND N: over DATA/NAME.KIND.
median() { bench_median "$DATA/$1.$2"; }
max() { sort -g "$DATA/$1.$2" | tail -n 1; }
min() { sort -g "$DATA/$1.$2" | head -n 1; }
nth() { sed -n "$3p" "$DATA/$1.$2"; }

mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }        # KiB -> MiB
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }           # bytes -> MB
secs() { awk -v s="$1" 'BEGIN { printf (s < 10 ? "%.2f s" : "%.1f s"), s }'; }

# stat_field STORE FIELD: one field of `buildfs stats --json`.
stat_field() {
    "$BUILDFS" stats --json --store "$1" | jq -r ".store.$2"
}

# evicted_at SIZE: how many snapshots `gc --dry-run --max-size SIZE` evicts.
evicted_at() {
    "$BUILDFS" gc --dry-run --json --store "$STORE" --max-size "$1" | tee -a "$LOG" | jq '.evicted | length'
}

# ------------------------------------------------------------------ steps --

check_tools() {
    [[ -x $BUILDFS ]] || die "no buildfs binary at $BUILDFS: run scripts/build-release (or set BUILDFS)"
    "$BUILDFS" gc --help >/dev/null 2>&1 || die "$BUILDFS has no gc command"
    "$BUILDFS" fsck --help >/dev/null 2>&1 || die "$BUILDFS has no fsck command"
    local tool
    for tool in /usr/bin/time python3 jq; do
        command -v "$tool" >/dev/null || die "$tool is needed"
    done
}

build_store() {
    local k files
    bench_log "building the store: $SNAPSHOTS snapshots of $FILES files in $DIRS directories, $CHANGE% changed each time"
    for (( k = 0; k < SNAPSHOTS; k++ )); do
        files=$(python3 "$BENCH_DIR/gc-fsck-gen.py" "$TREE" "$k" --files "$FILES" --dirs "$DIRS" --change "$CHANGE")
        echo "snapshot $k: $files files written" >>"$LOG"
        # Imports are timed where they stand: the store grows between them.
        timed import "$BUILDFS" import "$TREE" --key "$(printf 'gcbench-%03d' "$k")" --store "$STORE"
    done
}

# Finds the --max-size that evicts half of the snapshots, by bisection over
# dry runs (the number evicted only falls as the limit grows).
choose_max_size() {
    local target=$(( SNAPSHOTS / 2 )) lo=0 hi=$BYTES_BEFORE mid e i best=-1 best_e=-1
    for (( i = 0; i < 40; i++ )); do
        mid=$(( (lo + hi) / 2 ))
        e=$(evicted_at "$mid")
        echo "max-size $mid evicts $e" >>"$LOG"
        if (( best < 0 || (e - target) ** 2 < (best_e - target) ** 2 )); then best=$mid; best_e=$e; fi
        if (( e == target || hi - lo <= 1 )); then break; fi
        if (( e > target )); then lo=$mid; else hi=$mid; fi
    done
    MAX_SIZE=$best
    PLANNED_EVICT=$best_e
    bench_log "--max-size $MAX_SIZE evicts $PLANNED_EVICT of $SNAPSHOTS snapshots ($(( i + 1 )) dry runs to find it)"
}

measure_rounds() {
    local r j
    local -a names=(fsck dryrun gcnone)
    local -a order
    # Warm up: one untimed pass of each reads every pack into the page cache.
    "$BUILDFS" fsck --store "$STORE" >>"$LOG" 2>&1 || die "fsck finds the fresh store damaged (see $LOG)"
    "$BUILDFS" gc --store "$STORE" >>"$LOG" 2>&1
    for (( r = 0; r < ROUNDS; r++ )); do
        order=()
        for (( j = 0; j < 3; j++ )); do order+=("${names[(r + j) % 3]}"); done
        bench_log "round $(( r + 1 )) of $ROUNDS: ${order[*]}"
        for j in "${order[@]}"; do
            case $j in
                fsck) timed fsck "$BUILDFS" fsck --store "$STORE" ;;
                dryrun) timed dryrun "$BUILDFS" gc --dry-run --store "$STORE" --max-size "$MAX_SIZE"
                        DRYRUN_LINE=$(tail -n 1 "$OUT") ;;
                gcnone) timed gcnone "$BUILDFS" gc --store "$STORE"
                        GCNONE_LINE=$(tail -n 1 "$OUT") ;;
            esac
        done
    done
    FSCK_LINE=$(grep '^checked ' "$LOG" | tail -n 1)
    # gc with no limits must have left the store as it was.
    [[ $(stat_field "$STORE" objects) == "$OBJECTS" && $(stat_field "$STORE" snapshots) == "$SNAPSHOTS" ]] \
        || die "gc with no limits changed the store"
}

# The same commands on an empty store: the memory every run takes anyway.
measure_baseline() {
    timed basefsck "$BUILDFS" fsck --store "$EMPTY_STORE"
    timed basegc "$BUILDFS" gc --store "$EMPTY_STORE"
}

measure_real_gc() {
    bench_log "copying the store for the real gc"
    cp -a "$STORE" "$STORE_GC"
    timed gcreal "$BUILDFS" gc --store "$STORE_GC" --max-size "$MAX_SIZE"
    GCREAL_LINE=$(tail -n 1 "$OUT")
    local evicted
    evicted=$(grep -c '^evicted ' "$OUT" || true)
    (( evicted == PLANNED_EVICT )) || die "the real gc evicted $evicted snapshots, the dry run planned $PLANNED_EVICT"
    GC_DU=$(du -sb "$STORE_GC" | cut -f1)
    GC_OBJECTS=$(stat_field "$STORE_GC" objects)
    GC_PACKS=$(stat_field "$STORE_GC" packs)
    GC_SNAPSHOTS=$(stat_field "$STORE_GC" snapshots)
    timed fsckafter "$BUILDFS" fsck --store "$STORE_GC"
    FSCK_AFTER_LINE=$(tail -n 1 "$OUT")
    [[ $FSCK_AFTER_LINE == *"no damage"* ]] || die "fsck after gc: $FSCK_AFTER_LINE"
}

# -------------------------------------------------------------- the report --

# row NAME COMMAND NOTES: a table row from DATA/NAME (median of its runs).
row() {
    local name=$1 command=$2 notes=$3 n spread=""
    n=$(wc -l <"$DATA/$name.wall")
    if (( n > 1 )); then spread=" (${n} runs: $(awk -v a="$(min "$name" wall)" -v b="$(max "$name" wall)" 'BEGIN { printf (b < 10 ? "%.2f-%.2f" : "%.1f-%.1f"), a, b }') s)"; fi
    echo "| \`$command\` | $(secs "$(median "$name" wall)")$spread | $(mib "$(max "$name" rss)") | CPU $(secs "$(median "$name" cpu)"); $notes |"
    if awk -v w="$(median "$name" wall)" -v l="$SLOW_SECONDS" 'BEGIN { exit !(w > l) }'; then
        SLOW_ROWS+=("$command")
    fi
}

# per_object LABEL NAME BASE: peak RSS per object of the store above the
# same command's on an empty store (BASE), and where a linear extrapolation
# puts stores of 1M and 10M objects.
per_object() {
    awk -v label="$1" -v k="$(max "$2" rss)" -v k0="$(max "$3" rss)" -v n="$OBJECTS" 'BEGIN {
        b = (k - k0) * 1024 / n
        printf "- %s: %.0f bytes of peak RSS per object; linearly, %.1f GiB at 1M objects, %.1f GiB at 10M\n", label, b, b * 1e6 / 2^30, b * 1e7 / 2^30 }'
}

write_report() {
    local commit last=$SNAPSHOTS flag=""
    (( QUICK )) && flag=" --quick"
    commit=$(git -C "$REPO_DIR" log -1 --format='%h (%ci)' 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$REPO_DIR" status --porcelain -- Sources Package.swift 2>/dev/null) ]]; then
        commit+=" + uncommitted changes in Sources/"
    fi
    SLOW_ROWS=()
    mkdir -p "$(dirname "$RESULTS")"
    {
        echo "# gc and fsck at scale"
        echo
        echo "Written by \`bench/gc-fsck.sh$flag\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
        echo
        bench_machine_lines "$WORK_ROOT"
        echo "- buildfs: \`$BUILDFS\`, built $(date -u -r "$BUILDFS" '+%Y-%m-%d %H:%M UTC'); the repository at run time: $commit"
        echo
        echo "## The store"
        echo
        echo "- $SNAPSHOTS snapshots of a tree of $FILES files (1-4 KiB of source-like text, every version distinct) in $DIRS leaf directories ($(( DIRS / 25 + (DIRS % 25 > 0) + 1 + DIRS )) directories in all), imported one after another with $CHANGE% of the files rewritten in place before each import (a different $CHANGE% each time; \`bench/gc-fsck-gen.py\`)"
        echo "- **$OBJECTS objects** in $PACKS packs (\`buildfs stats --json\`), $(mb "$STORE_DU") on disk (\`du -sb\`); all snapshots' files: $(mb "$LOGICAL_BYTES"), dedup ${DEDUP}x, compression ${COMPRESSION}x"
        echo "- \`--max-size X\` for the gc rows: X = $MAX_SIZE bytes ($(mb "$MAX_SIZE")), found by bisection over dry runs as the limit that evicts $PLANNED_EVICT of the $SNAPSHOTS snapshots (the least recently used, here the first imported)"
        echo
        echo "## Method"
        echo
        echo "- Every command ran under \`/usr/bin/time -v\`: wall time from the shell's clock around it, peak memory = \"Maximum resident set size\", CPU = user + system seconds. A \`sync\` ran before each one."
        echo "- Warm page cache (the store, $(mb "$STORE_DU"), fits in memory many times; one untimed fsck and gc ran first). fsck, the dry run and the no-limit gc ran $ROUNDS times each, in rounds that rotate their order; the table gives the median, with the range. The no-limit gc left the store unchanged (checked with \`buildfs stats\`)."
        echo "- The real gc ran once, on a \`cp -a\` copy of the store, followed by one fsck of the result (which must find no damage). It evicted the $PLANNED_EVICT snapshots the dry run named."
        echo "- The machine was shared: the 1-minute load average before the timed commands ranged over $(sort -g "$DATA/loadavg" | head -n 1)-$(sort -g "$DATA/loadavg" | tail -n 1) (median $(bench_median "$DATA/loadavg")) on $(nproc) cores, so wall times carry noise; the CPU times (user + system) in the notes are steadier."
        echo "- Imports: every import was timed while the store was built; the first went into an empty store, import N into a store of N - 1 snapshots."
        echo
        echo "## Results"
        echo
        echo "| command | wall (median) | peak RSS | notes |"
        echo "|---|---|---|---|"
        row fsck "buildfs fsck --store S" "$FSCK_LINE"
        row dryrun "buildfs gc --dry-run --store S --max-size X" "$DRYRUN_LINE"
        row gcreal "buildfs gc --store S --max-size X" "once, on a copy: $GCREAL_LINE; afterwards $GC_SNAPSHOTS snapshots, $GC_OBJECTS objects in $GC_PACKS packs, $(mb "$GC_DU") on disk (\`du -sb\`)"
        row gcnone "buildfs gc --store S" "no limits, nothing to do (planning only): $GCNONE_LINE"
        row fsckafter "buildfs fsck --store S-after-gc" "once, on the store after the real gc: $FSCK_AFTER_LINE"
        echo "| \`buildfs import\` (snapshot $last, into $(( last - 1 )) snapshots) | $(secs "$(nth import wall "$last")") | $(mib "$(nth import rss "$last")") | CPU $(secs "$(nth import cpu "$last")"); $CHANGE% of $FILES files changed; for scale: the first import (empty store) took $(secs "$(nth import wall 1)") and $(mib "$(nth import rss 1)"), the median of imports 2-$last $(secs "$(tail -n +2 "$DATA/import.wall" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"), the largest peak RSS of any import $(mib "$(max import rss)") |"
        echo
        echo "Peak memory per object: (peak RSS - the same command's on an empty store, $(mib "$(max basegc rss)") for gc, $(mib "$(max basefsck rss)") for fsck) / objects in the store:"
        echo
        per_object "gc --dry-run" dryrun basegc
        per_object "gc with no limits" gcnone basegc
        per_object "gc (real)" gcreal basegc
        per_object "fsck" fsck basefsck
        echo
        if (( ${#SLOW_ROWS[@]} > 0 )); then
            echo "Slower than $SLOW_SECONDS s: ${SLOW_ROWS[*]}. To see where the time goes:"
            echo "\`perf record -g -o perf.data -- buildfs fsck --store S && perf report -i perf.data --no-children\`"
            echo "(the same for the gc command)."
        else
            echo "Nothing took more than $SLOW_SECONDS s."
        fi
    } >"$RESULTS"
    bench_log "report written to $RESULTS"
}

# ------------------------------------------------------------------- main --

main() {
    mkdir -p "$(dirname "$LOG")"
    : >"$LOG"
    check_tools
    (( ROUNDS >= 1 )) || die "ROUNDS must be at least 1"
    if [[ -e $WORK_ROOT ]]; then
        bench_log "removing the leftover $WORK_ROOT"
        bench_bulk_delete "$WORK_ROOT"
    fi
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$WORK_ROOT" "$DATA"
    bench_log "buildfs: $BUILDFS; work dir: $WORK_ROOT; report: $RESULTS"

    bench_wait_for_settle
    build_store
    STORE_DU=$(du -sb "$STORE" | cut -f1)
    OBJECTS=$(stat_field "$STORE" objects)
    PACKS=$(stat_field "$STORE" packs)
    BYTES_BEFORE=$(stat_field "$STORE" storedBytes)
    LOGICAL_BYTES=$(stat_field "$STORE" logicalBytes)
    DEDUP=$(stat_field "$STORE" dedupRatio)
    COMPRESSION=$(stat_field "$STORE" compressionRatio)
    [[ $(stat_field "$STORE" snapshots) == "$SNAPSHOTS" ]] || die "the store does not hold $SNAPSHOTS snapshots"
    bench_log "store: $OBJECTS objects in $PACKS packs, $STORE_DU bytes (du -sb)"
    (( OBJECTS >= MIN_OBJECTS )) || die "only $OBJECTS objects, fewer than $MIN_OBJECTS: raise FILES or SNAPSHOTS"

    choose_max_size
    measure_rounds
    measure_real_gc
    measure_baseline
    write_report
    cat "$RESULTS"
}

main
