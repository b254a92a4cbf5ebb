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
