#!/usr/bin/env bash
# Import/export benchmark: buildfs against tar + zstd on a real ~300 MB build
# tree (see make-build-tree.sh), measured side by side in one run.
#
#   bench/import-export.sh
#
# Steps (targets from the issue):
#   1. first import into an empty store vs `tar -cf - DIR | zstd -T0 -3`,
#      time (<= 1.0) and stored bytes, du -sb store vs archive (<= 1.0)
#   2. unchanged re-import into the same store vs the first import (<= 0.1)
#   3. five imports of a tree with small changes into one store vs the sum of
#      the five runs' tar.zst sizes (<= 0.35)
#   4. export into an empty dir vs `zstd -d < out.tar.zst | tar -xf -` (<= 1.0)
#
# The machine is small and shared, so: everything runs warm (one untimed pass
# reads the tree and runs both tools once), buildfs and baseline rounds
# alternate (odd rounds buildfs first, even rounds baseline first), `sync`
# runs before every timed command so that one step's writeback is not charged
# to the next, and the report gives medians and ratios of medians.
#
# Environment:
#   BUILDFS    buildfs binary (default: <repo>/.build-release/buildfs)
#   ROUNDS     rounds per alternating measurement (default 5, at least 3)
#   WORK_ROOT  scratch dir (default bench/work/import-export, git-ignored);
#              removed at the end unless KEEP_WORK=1
#   RESULTS    report file (default bench/results/import-export.md)
#   SETTLE_SECONDS  how old the last bulk deletion must be before timing
#              starts (default 360; see "Deleting files" below)
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"
REPO_DIR=$(dirname "$BENCH_DIR")
BUILDFS=${BUILDFS:-$REPO_DIR/.build-release/buildfs}
ROUNDS=${ROUNDS:-5}
WORK_ROOT=${WORK_ROOT:-$BENCH_DIR/work/import-export}
KEEP_WORK=${KEEP_WORK:-0}
RESULTS=${RESULTS:-$BENCH_DIR/results/import-export.md}
LOG=$BENCH_DIR/work/import-export.log   # every command's output; outlives WORK_ROOT
SETTLE_SECONDS=${SETTLE_SECONDS:-360}
SETTLE_MARK=$BENCH_DIR/work/.last-bulk-delete   # touched after each bulk deletion

TREE=$WORK_ROOT/tree          # the build tree that gets imported / archived
DATA=$WORK_ROOT/data          # one file per measurement, one value per line
ARCHIVES=$WORK_ROOT/archives
EXPORT_DIR=$WORK_ROOT/export
STORE_FIRST=$WORK_ROOT/store-first
STORE_FIVE=$WORK_ROOT/store-five
TRASH=$WORK_ROOT/trash        # retired stores and export dirs, see retire()
CHANGE_RUNS=5

# ---------------------------------------------------------------- plumbing --


on_error() {
    echo "import-export.sh: failed at line $1; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2
}
trap 'on_error $LINENO' ERR

cleanup() {
    if [[ $KEEP_WORK == 1 ]]; then
        echo "keeping $WORK_ROOT (KEEP_WORK=1)" >&2
    else
        bulk_delete "$WORK_ROOT"
    fi
}

# Deleting files. On ext4 without a journal (this machine's root filesystem)
# the inode allocator skips inodes freed in the last 1-6 minutes and pays a
# buffer-cache lookup for each one it skips, so every file created soon after
# a big deletion is slow: extracting the tree took 6-9 s instead of 0.9 s right
# after an earlier copy was deleted, with the time in the kernel's
# recently_deleted(). That would charge one round's cleanup to the next
# round's export or store writes. So nothing is deleted while measuring:
# retired directories are moved into $TRASH, which goes at the very end, and
# timing starts only once the last bulk deletion is SETTLE_SECONDS old.
bulk_delete() { rm -rf "$@"; touch "$SETTLE_MARK"; }

trash_count=0
retire() {
    [[ -e $1 ]] || return 0
    trash_count=$(( trash_count + 1 ))
    mkdir -p "$TRASH"
    mv "$1" "$TRASH/$trash_count-$(basename "$1")"
}

wait_for_settle() {
    [[ -f $SETTLE_MARK ]] || return 0
    local age
    age=$(( $(date +%s) - $(stat -c %Y "$SETTLE_MARK") ))
    if (( age < SETTLE_SECONDS )); then
        bench_log "waiting $(( SETTLE_SECONDS - age )) s: the last bulk deletion was ${age} s ago (see bulk_delete)"
        sleep $(( SETTLE_SECONDS - age ))
    fi
}

check_prerequisites() {
    [[ -x $BUILDFS ]] || { echo "no buildfs binary at $BUILDFS (set BUILDFS)" >&2; exit 1; }
    (( ROUNDS >= 3 )) || { echo "ROUNDS must be at least 3" >&2; exit 1; }
    local tool
    for tool in tar zstd du awk make gcc pip; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
    done
}

# An empty store for every fresh import: rounds must not reuse earlier chunks.
fresh_store() { retire "$1"; mkdir -p "$1"; }

# Both exports go into an empty, existing directory.
fresh_export_dir() { retire "$EXPORT_DIR"; mkdir -p "$EXPORT_DIR"; }

bytes_of() { du -sb "$1" | cut -f1; }

# measure NAME CMD...: runs CMD once, appends its wall-clock seconds to
# $DATA/NAME.wall and its CPU seconds (user+sys, all threads and children)
# to $DATA/NAME.cpu. CPU/wall shows how much of the 2 cores a tool used.
measure() {
    local name=$1; shift
    local start end TIMEFORMAT='%U %S'
    sync   # flush earlier steps' dirty pages outside the timed region
    echo "+ [$name] $*" >>"$LOG"
    start=$(date +%s.%N)
    { time "$@" >>"$LOG" 2>&1; } 2>"$DATA/.cpu"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }' >>"$DATA/$name.wall"
    awk '{ printf "%.3f\n", $1 + $2 }' "$DATA/.cpu" >>"$DATA/$name.cpu"
}

record() { echo "$2" >>"$DATA/$1"; }   # record NAME VALUE: a non-time value

median() {   # median FILE: median of the numbers in FILE, one per line
    sort -g "$1" | awk '{ v[NR] = $1 }
        END { if (NR == 0) exit 1
              print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

sum_of() { awk '{ s += $1 } END { print s }' "$1"; }

# ------------------------------------------------- the commands being timed --

buildfs_import() { "$BUILDFS" import "$TREE" --key "$1" --store "$2"; }

buildfs_export() { "$BUILDFS" export "$EXPORT_DIR" --from "$1" --store "$2"; }

# Archive with paths relative to the tree's parent, as a CI cache step would.
tar_zstd_create() {
    tar -cf - -C "$(dirname "$TREE")" "$(basename "$TREE")" | zstd -T0 -3 -q >"$1"
}

tar_zstd_extract() { zstd -d -q <"$1" | tar -xf - -C "$EXPORT_DIR"; }

# -------------------------------------------------------------- the steps ---

prepare_tree() {
    bench_log "building the tree in $TREE"
    "$BENCH_DIR/make-build-tree.sh" "$TREE" >>"$LOG" 2>&1
}

# Untimed: pull the tree into the page cache and run both tools once, so that
# the first timed round of either tool is not the one paying for cold caches.
warm_up() {
    bench_log "warm-up (untimed)"
    find "$TREE" -type f -exec cat {} + >/dev/null
    local store=$WORK_ROOT/store-warmup archive=$ARCHIVES/warmup.tar.zst
    fresh_store "$store"
    buildfs_import warmup "$store" >>"$LOG" 2>&1
    fresh_export_dir
    buildfs_export warmup "$store" >>"$LOG" 2>&1
    tar_zstd_create "$archive"
    fresh_export_dir
    tar_zstd_extract "$archive"
    retire "$store"; retire "$archive"; retire "$EXPORT_DIR"
}

# Steps 1 and 2. Each round: a fresh-store import, then an unchanged re-import
# into that store; and a tar.zst of the same tree. The store and archive of
# the last round are kept for the export step.
bench_first_import() {
    local round
    for (( round = 1; round <= ROUNDS; round++ )); do
        bench_log "first import / re-import / tar.zst, round $round of $ROUNDS"
        if (( round % 2 == 1 )); then
            first_import_round "$round"; tar_round "$round"
        else
            tar_round "$round"; first_import_round "$round"
        fi
    done
}

first_import_round() {
    local round=$1
    fresh_store "$STORE_FIRST"
    measure first_import buildfs_import "first-$round" "$STORE_FIRST"
    record store_bytes "$(bytes_of "$STORE_FIRST")"
    if (( round == 1 )); then   # keep one summary line for the report
        tail -n 1 "$LOG" >"$DATA/first_import_summary"
    fi
    measure reimport buildfs_import "reimport-$round" "$STORE_FIRST"
    if (( round == 1 )); then
        tail -n 1 "$LOG" >"$DATA/reimport_summary"
    fi
}

tar_round() {
    local archive=$ARCHIVES/tree.tar.zst
    retire "$archive"
    measure tar_create tar_zstd_create "$archive"
    record archive_bytes "$(bytes_of "$archive")"
}

# Step 4. Exports the last round's first import; extracts the last archive.
bench_export() {
    local round key="first-$ROUNDS"
    for (( round = 1; round <= ROUNDS; round++ )); do
        bench_log "export / tar.zst extract, round $round of $ROUNDS"
        if (( round % 2 == 1 )); then
            export_round "$key" "$round"; extract_round
        else
            extract_round; export_round "$key" "$round"
        fi
    done
    retire "$EXPORT_DIR"
}

export_round() {
    local key=$1 round=$2
    fresh_export_dir
    measure export buildfs_export "$key" "$STORE_FIRST"
    if (( round == 1 )); then verify_export; fi
}

extract_round() {
    fresh_export_dir
    measure tar_extract tar_zstd_extract "$ARCHIVES/tree.tar.zst"
}

# Untimed sanity check of the export: same paths, types, modes, file sizes, symlink
# targets, file mtimes (whole seconds, as tar keeps them) and file contents.
verify_export() {
    local verdict="identical to the source tree (paths, types, modes, file sizes, symlink targets, file mtimes, contents)"
    if ! diff <(tree_manifest "$TREE") <(tree_manifest "$EXPORT_DIR") >>"$LOG" 2>&1; then
        verdict="DIFFERS in metadata from the source tree (see $LOG)"
    elif ! diff -r --no-dereference -q "$TREE" "$EXPORT_DIR" >>"$LOG" 2>&1; then
        verdict="DIFFERS in file contents from the source tree (see $LOG)"
    fi
    echo "$verdict" >"$DATA/export_verdict"
    bench_log "export check: $verdict"
}

tree_manifest() {
    (cd "$1" && find . -mindepth 1 -printf '%P %y %m %s %l %T@\n') |
        awk '{ if ($2 == "f") $NF = int($NF); else $NF = "-"
               if ($2 == "d") $4 = "-"   # directory sizes depend on history
               print }' | LC_ALL=C sort
}

# Step 3. Five changed runs in one fresh store; each run's tree also gets its
# own tar.zst. Runs 2..5 also give incremental import times (informational).
bench_five_changes() {
    local run files_changed stamp=$WORK_ROOT/change-stamp
    fresh_store "$STORE_FIVE"
    for (( run = 1; run <= CHANGE_RUNS; run++ )); do
        bench_log "changed run $run of $CHANGE_RUNS"
        touch "$stamp"
        "$BENCH_DIR/make-build-tree.sh" --change "$run" "$TREE" >>"$LOG" 2>&1
        files_changed=$(find "$TREE" -newer "$stamp" -type f | wc -l)
        record changed_files "$files_changed"
        if (( run % 2 == 1 )); then
            change_import "$run"; change_archive "$run"
        else
            change_archive "$run"; change_import "$run"
        fi
    done
    record five_store_bytes "$(bytes_of "$STORE_FIVE")"
    "$BUILDFS" snapshots --json --store "$STORE_FIVE" >>"$LOG" 2>&1
}

change_import() {
    local run=$1 name=change_import_rest
    if (( run == 1 )); then name=change_import_first; fi
    measure "$name" buildfs_import "change-$run" "$STORE_FIVE"
    tail -n 1 "$LOG" >>"$DATA/change_import_summaries"
}

change_archive() {
    local run=$1 archive=$ARCHIVES/change-$1.tar.zst name=tar_create_change
    measure "$name" tar_zstd_create "$archive"
    record change_archive_bytes "$(bytes_of "$archive")"
}

# ----------------------------------------------------------------- report ---

fmt_secs() { awk -v v="$1" 'BEGIN { printf "%.3f s", v }'; }
fmt_mb() { awk -v v="$1" 'BEGIN { printf "%.1f MB", v / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }
verdict() {   # verdict RATIO TARGET
    awk -v r="$1" -v t="$2" 'BEGIN { if (r == "n/a") print "n/a"; else print (r + 0 <= t + 0) ? "PASS" : "FAIL" }'
}

# table_row STEP BUILDFS BASELINE FORMATTER TARGET
table_row() {
    local step=$1 ours=$2 theirs=$3 fmt=$4 target=$5 r
    r=$(ratio "$ours" "$theirs")
    if [[ $target == - ]]; then
        printf '| %s | %s | %s | %s | — | (info) |\n' "$step" "$("$fmt" "$ours")" "$("$fmt" "$theirs")" "$r"
    else
        printf '| %s | %s | %s | %s | ≤ %s | %s |\n' "$step" "$("$fmt" "$ours")" "$("$fmt" "$theirs")" \
            "$r" "$target" "$(verdict "$r" "$target")"
    fi
}

values_of() { paste -sd' ' "$1"; }   # all rounds' values on one line

# detail_row NAME LABEL: wall-clock rounds, median wall, median CPU, CPU/wall
detail_row() {
    local name=$1 label=$2 wall cpu
    wall=$(median "$DATA/$name.wall")
    cpu=$(median "$DATA/$name.cpu")
    printf '| %s | %s | %s | %s | %s |\n' "$label" "$(values_of "$DATA/$name.wall")" \
        "$(fmt_secs "$wall")" "$(fmt_secs "$cpu")" "$(ratio "$cpu" "$wall")"
}

machine_header() {
    local cpu_model tree_bytes tree_files tree_dirs tree_links revision version
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    tree_bytes=$(cat "$DATA/tree_bytes")
    tree_files=$(cat "$DATA/tree_files")
    tree_dirs=$(cat "$DATA/tree_dirs")
    tree_links=$(cat "$DATA/tree_links")
    revision=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    if ! git -C "$REPO_DIR" diff --quiet HEAD 2>/dev/null; then revision="$revision (+ uncommitted changes)"; fi
    version=$("$BUILDFS" --version 2>/dev/null | head -n 1 || true)
    cat <<EOF
# buildfs import/export benchmark

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(nproc) cores ($cpu_model), $(free -h | awk '/^Mem:/ { print $2 }') memory, kernel $(uname -r)
- zstd: $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//'); tar: $(tar --version | head -n 1)
- buildfs: ${version:-version unknown}, repo revision $revision, binary \`$BUILDFS\`
- tree: $(fmt_mb "$tree_bytes") (du -sb), $tree_files files, $tree_dirs directories, $tree_links symlinks
  (zstd C library built with make -O2 -g: .c/.o/.d/.a/.so/executable, plus a copy
  of /usr/include, gcc's lib dir and the compiler/binutils binaries)
- method: warm caches (untimed warm-up pass), $ROUNDS alternating rounds, medians; \`sync\` before each timed
  command; nothing deleted while measuring and no bulk deletion in the $SETTLE_SECONDS s before (ext4 inode reuse delay)
EOF
}

write_report() {
    local line first tar_c store archive reimport exported extract five_store five_archives
    first=$(median "$DATA/first_import.wall")
    tar_c=$(median "$DATA/tar_create.wall")
    store=$(median "$DATA/store_bytes")
    archive=$(median "$DATA/archive_bytes")
    reimport=$(median "$DATA/reimport.wall")
    exported=$(median "$DATA/export.wall")
    extract=$(median "$DATA/tar_extract.wall")
    five_store=$(cat "$DATA/five_store_bytes")
    five_archives=$(sum_of "$DATA/change_archive_bytes")
    {
        machine_header
        echo
        echo "| step | buildfs (median) | baseline (median) | ratio | target | result |"
        echo "| --- | ---: | ---: | ---: | ---: | --- |"
        table_row "1a. first import (empty store) vs tar + zstd -T0 -3" "$first" "$tar_c" fmt_secs 1.0
        table_row "1b. fresh store size vs tar.zst size" "$store" "$archive" fmt_mb 1.0
        table_row "2. unchanged re-import vs first import" "$reimport" "$first" fmt_secs 0.1
        table_row "3. store after $CHANGE_RUNS changed imports vs sum of $CHANGE_RUNS tar.zst" \
            "$five_store" "$five_archives" fmt_mb 0.35
        table_row "4. export (empty dir) vs zstd -d + tar -x" "$exported" "$extract" fmt_secs 1.0
        table_row "changed-tree import, runs 2-$CHANGE_RUNS, vs tar + zstd of the same trees" \
            "$(median "$DATA/change_import_rest.wall")" "$(median "$DATA/tar_create_change.wall")" fmt_secs -
        echo
        echo "Baselines: \`tar -cf - -C PARENT tree | zstd -T0 -3 -q > out.tar.zst\` and"
        echo "\`zstd -d -q < out.tar.zst | tar -xf - -C EMPTY_DIR\`. Sizes are \`du -sb\` (apparent bytes)."
        echo "Step 2's baseline column is buildfs's own first import."
        echo
        echo "## Details"
        echo
        echo "| measurement | wall seconds, in run order | median wall | median CPU (user+sys) | CPU / wall |"
        echo "| --- | --- | ---: | ---: | ---: |"
        detail_row first_import "buildfs import, empty store"
        detail_row reimport "buildfs import, unchanged"
        detail_row tar_create "tar + zstd"
        detail_row export "buildfs export"
        detail_row tar_extract "zstd -d + tar -x"
        detail_row change_import_first "buildfs import, changed run 1 (empty store)"
        detail_row change_import_rest "buildfs import, changed runs 2-$CHANGE_RUNS"
        detail_row tar_create_change "tar + zstd, changed runs 1-$CHANGE_RUNS"
        echo
        echo "- fresh store bytes per round: $(values_of "$DATA/store_bytes"); tar.zst bytes: $(values_of "$DATA/archive_bytes")"
        echo "- changed runs: files changed per run: $(values_of "$DATA/changed_files");" \
             "tar.zst bytes per run: $(values_of "$DATA/change_archive_bytes"); store after all: $five_store bytes"
        echo "- export check (round 1): $(cat "$DATA/export_verdict")"
        echo "- buildfs output, first import: \`$(cat "$DATA/first_import_summary")\`"
        echo "- buildfs output, unchanged re-import: \`$(cat "$DATA/reimport_summary")\`"
        echo "- buildfs output, changed runs:"
        while IFS= read -r line; do echo "  - \`$line\`"; done <"$DATA/change_import_summaries"
    } >"$RESULTS"
}

describe_tree() {
    record tree_bytes "$(bytes_of "$TREE")"
    record tree_files "$(find "$TREE" -type f | wc -l)"
    record tree_dirs "$(find "$TREE" -type d | wc -l)"
    record tree_links "$(find "$TREE" -type l | wc -l)"
}

main() {
    check_prerequisites
    mkdir -p "$(dirname "$LOG")" "$(dirname "$RESULTS")"
    : >"$LOG"
    trap cleanup EXIT
    if [[ -e $WORK_ROOT ]]; then bulk_delete "$WORK_ROOT"; fi
    mkdir -p "$DATA" "$ARCHIVES"

    prepare_tree
    describe_tree
    wait_for_settle
    warm_up
    bench_first_import
    bench_export
    bench_five_changes
    write_report
    cat "$RESULTS"
    bench_log "report written to $RESULTS; command output in $LOG"
}

main "$@"
