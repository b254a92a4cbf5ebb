#!/usr/bin/env bash
# Mount benchmark: the same workloads on a plain directory (native), through
# `buildfs mount`, through bindfs and through fuse-overlayfs, side by side in
# one run, reported as medians and ratios against native.
#
#   bench/mount.sh [--quick] [--only GROUPS] [--fs FILESYSTEMS] [--rounds N]
#
#   --quick        1 round, smaller sizes, no settle wait; the report goes to
#                  bench/work/mount-quick.md unless RESULTS is set
#   --only GROUPS  comma-separated workload groups (default: all):
#                    io    1 GiB sequential write, warm re-read (+ info rows)
#                    make  clean `make -j2` of zstd's library, no-op make
#                    tree  untar of ~11.5k small files, 2nd find, 2nd ls -lR,
#                          rm -rf
#                    many  200k files created and walked, daemon RSS
#                  workload names are accepted too: write, read, noop, untar,
#                  find, ls, rm select their group
#   --fs LIST      comma-separated, from native,buildfs,bindfs,fuse-overlayfs
#                  (default: all; buildfs is left out, with a note in the
#                  report, while its binary has no `mount` command)
#   --rounds N     rounds for every group (default 5; the many group 3)
#
# Environment: BUILDFS (default <repo>/.build-release/buildfs), RESULTS,
# WORK_ROOT (scratch, default bench/work/mount or, with --quick,
# bench/work/mount-quick; git-ignored; removed at the end unless KEEP_WORK=1;
# the log WORK_ROOT.log and the raw numbers WORK_ROOT-data stay),
# SETTLE_SECONDS (see lib.sh; default 360, 0 with --quick), ROUNDS,
# MANY_ROUNDS, WRITE_MIB, MANY_FILES, NOOP_REPS, UNTAR_SOURCES, MAKE_JOBS.
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
QUICK=0
for arg in "$@"; do [[ $arg == --quick ]] && QUICK=1; done
if (( QUICK )); then SETTLE_SECONDS=${SETTLE_SECONDS:-0}; fi
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

if (( QUICK )); then
    WORK_ROOT=${WORK_ROOT:-$BENCH_DIR/work/mount-quick}
    RESULTS=${RESULTS:-$BENCH_DIR/work/mount-quick.md}
fi
bench_paths mount
KEEP_WORK=${KEEP_WORK:-0}
LOG=$WORK_ROOT.log          # every command's output
DATA=$WORK_ROOT-data        # raw numbers; small, kept after the run
MAKE_JOBS=${MAKE_JOBS:-2}
ALL_FS=(native buildfs bindfs fuse-overlayfs)
ALL_GROUPS=(io make tree many)

if (( QUICK )); then
    ROUNDS=${ROUNDS:-1}; MANY_ROUNDS=${MANY_ROUNDS:-1}
    WRITE_MIB=${WRITE_MIB:-256}; MANY_FILES=${MANY_FILES:-20000}
    NOOP_REPS=${NOOP_REPS:-5}; UNTAR_SOURCES=${UNTAR_SOURCES:-/usr/include}
    MAKE_DIRS=${MAKE_DIRS:-common decompress}
else
    ROUNDS=${ROUNDS:-5}; MANY_ROUNDS=${MANY_ROUNDS:-3}
    WRITE_MIB=${WRITE_MIB:-1024}; MANY_FILES=${MANY_FILES:-200000}
    NOOP_REPS=${NOOP_REPS:-20}
    UNTAR_SOURCES=${UNTAR_SOURCES:-/usr/include /usr/share/perl /usr/share/zoneinfo}
    MAKE_DIRS=${MAKE_DIRS:-common compress decompress legacy}
fi

INPUTS=$WORK_ROOT/inputs      # the tarball and the make project, made once
RUNS=$WORK_ROOT/runs          # one directory per (group, filesystem, round)
BENCH_MOUNTS=$WORK_ROOT/mounted   # live mounts (lib.sh)
BENCH_LOAD_LOG=$DATA/load

# ---------------------------------------------------------------- plumbing --

die() { bench_log "mount.sh: $*"; exit 1; }

usage() { sed -n '2,/MAKE_JOBS\.$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

is_mounted() { findmnt -rn --mountpoint "$1" >/dev/null 2>&1; }

# fs_mount FS DIR: makes the filesystem FS over DIR/upper and prints the
# directory to work in (DIR/upper itself for native, DIR/mnt otherwise).
# Writes the daemon's pid to DIR/daemon.pid. Reuses DIR's contents if any.
fs_mount() {
    local fs=$1 dir=$2 mp=$2/mnt pid i
    mkdir -p "$dir/upper"
    if [[ $fs == native ]]; then
        echo 0 >"$dir/daemon.pid"
        echo "$dir/upper"
        return
    fi
    mkdir -p "$mp"
    is_mounted "$mp" && { bench_log "already mounted: $mp"; return 1; }
    case $fs in
        buildfs) "$BUILDFS" mount "$mp" --upper "$dir/upper" >>"$LOG" 2>&1 9>&- ;;
        bindfs) bindfs --no-allow-other "$dir/upper" "$mp" >>"$LOG" 2>&1 9>&- ;;
        fuse-overlayfs)
            mkdir -p "$dir/lower" "$dir/work"
            fuse-overlayfs -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" \
                "$mp" >>"$LOG" 2>&1 9>&- ;;
        *) die "unknown filesystem $fs" ;;
    esac
    for (( i = 0; i < 100; i++ )); do
        if is_mounted "$mp"; then break; fi
        sleep 0.1
    done
    is_mounted "$mp" || { bench_log "$fs: $mp is not mounted 10 s after the mount command returned"; return 1; }
    pid=$(bench_mount_pid "$mp")
    bench_mount_add "$mp" "$pid" "$([[ $fs != buildfs ]] || echo "$BUILDFS")"
    # The FUSE transport and features the daemon runs with, from its log.
    if [[ $fs == buildfs && ! -s $DATA/transport ]]; then
        grep -h "serving on the " "${XDG_RUNTIME_DIR:-/run}/buildfs/"*.log 2>/dev/null | tail -n 1 \
            | sed 's/.*serving on the //' >"$DATA/transport" || true
    fi
    (( pid != 0 )) || bench_log "$fs: could not find the daemon of $mp (no RSS/CPU numbers)"
    echo "$pid" >"$dir/daemon.pid"
    echo "$mp"
}

fs_umount() {   # fs_umount FS DIR
    [[ $1 == native ]] || bench_unmount "$2/mnt"
}

# measure NAME FS ROUND DIR CMD...: bench_measure of NAME.FS, with the
# daemon of DIR's mount.
measure() {
    local name=$1.$2 round=$3 dir=$4
    shift 4
    bench_measure "$name" "$round" "$(cat "$dir/daemon.pid")" "$@"
}

check() {   # check DESCRIPTION CONDITION...: fails the unit when CONDITION fails
    local what=$1; shift
    "$@" || { bench_log "check failed: $what"; return 1; }
}

# Group names (what --only accepts) and the measurements each one records.
declare -A GROUP_NAMES=(
    [io]="write read1 reread write_fsync hwm_io"
    [make]="make noop hwm_make"
    [tree]="untar find ls hwm_tree"
    [tree_rm]="rm"
    [many]="many_create many_walk many_hwm many_rss many_fds"
)

# run_unit FS ROUND: one filesystem's turn in one round of GROUP (bench_unit).
run_unit() {
    local fs=$1 round=$2 names="" name
    bench_log "$GROUP, round $round: $fs"
    for name in ${GROUP_NAMES[$GROUP]}; do names+=" $name.$fs"; done
    bench_unit "$names" "unit_$GROUP" "$fs" "$round"
}

# for_rounds GROUP ROUNDS: round-robin over the filesystems.
for_rounds() { GROUP=$1; bench_round_robin "$2" run_unit "${FS_LIST[@]}"; }

unit_dir() { echo "$RUNS/$1-$2-r$3"; }

# record_daemon NAME FS ROUND DIR: the daemon's peak RSS so far (kB).
record_daemon() {
    local pid
    pid=$(cat "$4/daemon.pid")
    if (( pid != 0 )); then bench_record "$1.$2" "$3" "$(bench_status_kb "$pid" VmHWM)"; fi
}

# What a failed many-files round had done, and the daemon's state then.
BENCH_ON_UNIT_FAILURE=record_failure_state
record_failure_state() {
    [[ $1 == unit_many ]] || return 0
    local fs=$2 round=$3 dir pid files text
    dir=$(unit_dir many "$fs" "$round")
    files=$(find "$dir/upper" -type f 2>/dev/null | wc -l)
    text="$files files created"
    pid=$(cat "$dir/daemon.pid" 2>/dev/null || echo 0)
    if (( pid != 0 )) && [[ -d /proc/$pid ]]; then
        text="$text; daemon then: VmHWM $(fmt_kb "$(bench_status_kb "$pid" VmHWM)"), $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l) open fds, fd limit $(awk '/^Max open files/ { print $4 }' "/proc/$pid/limits")"
    elif (( pid != 0 )); then
        text="$text; daemon $pid had exited"
    fi
    echo "$round $text" >>"$DATA/many_failure.$fs"
}

# ----------------------------------------------------------------- inputs ---

prepare_make_project() {
    local tarball tmp libdir src=$INPUTS/zstd-project dir
    tarball=$(bench_fetch_zstd_sdist)
    tmp=$(mktemp -d "$WORK_ROOT/sdist.XXXXXX")
    tar -xzf "$tarball" -C "$tmp"
    libdir=$(find "$tmp" -type d -path '*/zstd/lib' | head -n 1)
    [[ -n $libdir && -f $libdir/zstd.h ]] || die "no zstd/lib with zstd.h in $tarball"
    mkdir -p "$src/lib"
    cp -a "$libdir"/*.h "$src/lib/"
    for dir in $MAKE_DIRS; do cp -a "$libdir/$dir" "$src/lib/"; done
    local legacy=0
    [[ " $MAKE_DIRS " == *" legacy "* ]] && legacy=5
    # Each .c (and the amd64 Huffman decoder .S) becomes an .o with a .d
    # dependency file, all archived into libzstd.a: a no-op make then stats
    # every source, header and object.
    cat >"$src/Makefile" <<MAKEFILE
CC       = gcc
CFLAGS   = -O2
CPPFLAGS = -Ilib -Ilib/common -DXXH_NAMESPACE=ZSTD_ -DZSTD_MULTITHREAD -DZSTD_LEGACY_SUPPORT=$legacy
SRCS := \$(sort \$(wildcard lib/*/*.c))
ASMS := \$(sort \$(wildcard lib/*/*.S))
OBJS := \$(patsubst lib/%.c,build/%.o,\$(SRCS)) \$(patsubst lib/%.S,build/%.o,\$(ASMS))

build/libzstd.a: \$(OBJS)
	rm -f \$@
	ar rcs \$@ \$^

build/%.o: lib/%.c
	@mkdir -p \$(@D)
	\$(CC) \$(CPPFLAGS) \$(CFLAGS) -pthread -MMD -MP -c \$< -o \$@

build/%.o: lib/%.S
	@mkdir -p \$(@D)
	\$(CC) \$(CPPFLAGS) -MMD -MP -c \$< -o \$@

-include \$(OBJS:.o=.d)
MAKEFILE
    rm -rf "$tmp"
    echo "$(find "$src/lib" -name '*.c' | wc -l) C files + $(find "$src/lib" -name '*.S' | wc -l) assembly file from $(basename "$tarball") ($MAKE_DIRS)" \
        >"$DATA/make_sources"
}

prepare_tarball() {
    local tarball=$INPUTS/tree.tar src
    local -a rel=()
    for src in $UNTAR_SOURCES; do rel+=("${src#/}"); done
    tar -cf "$tarball" -C / "${rel[@]}" 2>>"$LOG"
    # Entries as they land on disk (tar's list lacks implicit parents).
    mkdir -p "$INPUTS/untar-check"
    tar -xf "$tarball" -C "$INPUTS/untar-check"
    find "$INPUTS/untar-check" | wc -l >"$DATA/tree_entries"
    echo "$(find "$INPUTS/untar-check" -type f | wc -l) files, $(find "$INPUTS/untar-check" -type d | wc -l) directories, $(find "$INPUTS/untar-check" -type l | wc -l) symlinks, $(du -sb "$tarball" | awk '{ printf "%.0f MB", $1 / 1e6 }') tarball (uncompressed) of $UNTAR_SOURCES" \
        >"$DATA/tree_desc"
}

# ----------------------------------------------------------- the workloads --

dd_write() { dd if=/dev/zero of="$1" bs=1M count="$WRITE_MIB" status=none; }
dd_write_fsync() { dd if=/dev/zero of="$1" bs=1M count="$WRITE_MIB" conv=fsync status=none; }
dd_read() { dd if="$1" of=/dev/null bs=1M status=none; }

unit_io() {
    local fs=$1 round=$2 dir target
    dir=$(unit_dir io "$fs" "$round")
    target=$(fs_mount "$fs" "$dir")
    measure write "$fs" "$round" "$dir" dd_write "$target/big"
    check "written file has $WRITE_MIB MiB" test "$(stat -c %s "$target/big")" -eq $(( WRITE_MIB << 20 ))
    measure read1 "$fs" "$round" "$dir" dd_read "$target/big"
    measure reread "$fs" "$round" "$dir" dd_read "$target/big"
    measure write_fsync "$fs" "$round" "$dir" dd_write_fsync "$target/big2"
    rm -f "$target/big" "$target/big2"
    record_daemon hwm_io "$fs" "$round" "$dir"
    fs_umount "$fs" "$dir"
}

no_compiles() { ! grep -q -- ' -c ' "$1"; }
make_build() { make -C "$1" -j"$MAKE_JOBS"; }
make_noop() {
    local i
    for (( i = 0; i < NOOP_REPS; i++ )); do make -C "$1" -j"$MAKE_JOBS"; done
}

unit_make() {
    local fs=$1 round=$2 dir target
    dir=$(unit_dir make "$fs" "$round")
    target=$(fs_mount "$fs" "$dir")
    cp -a "$INPUTS/zstd-project" "$target/zstd"
    measure make "$fs" "$round" "$dir" make_build "$target/zstd"
    check "libzstd.a was built" test -s "$target/zstd/build/libzstd.a"
    measure noop "$fs" "$round" "$dir" make_noop "$target/zstd"
    check "no-op make compiled nothing" no_compiles "$BENCH_OUT"
    check "make -q says up to date" make -q -C "$target/zstd"
    record_daemon hwm_make "$fs" "$round" "$dir"
    fs_umount "$fs" "$dir"
}

untar() { mkdir "$2" && tar -xf "$1" -C "$2"; }
walk_names() { find "$1" >/dev/null; }
list_long() { ls -lR "$1" >/dev/null; }

# The tree's untar/find/ls run here; its rm -rf runs in unit_tree_rm, after
# the other groups, so that no round creates files right after another round
# deleted thousands (see bench_bulk_delete in lib.sh).
unit_tree() {
    local fs=$1 round=$2 dir target
    dir=$(unit_dir tree "$fs" "$round")
    target=$(fs_mount "$fs" "$dir")
    measure untar "$fs" "$round" "$dir" untar "$INPUTS/tree.tar" "$target/t"
    check "untar gave $(cat "$DATA/tree_entries") entries" \
        test "$(find "$target/t" | wc -l)" -eq "$(cat "$DATA/tree_entries")"   # also the 1st find
    measure find "$fs" "$round" "$dir" walk_names "$target/t"
    list_long "$target/t"
    measure ls "$fs" "$round" "$dir" list_long "$target/t"
    record_daemon hwm_tree "$fs" "$round" "$dir"
    fs_umount "$fs" "$dir"
}

# rm -rf of the tree left by unit_tree, on a fresh mount of the same upper
# directory, after an untimed `find` (so the tree is known to the kernel and
# the daemon, as it is when a build deletes what it made).
unit_tree_rm() {
    local fs=$1 round=$2 dir target
    dir=$(unit_dir tree "$fs" "$round")
    [[ -d $dir/upper/t ]] || { bench_log "no tree from the untar round in $dir"; return 1; }
    target=$(fs_mount "$fs" "$dir")
    walk_names "$target/t"
    measure rm "$fs" "$round" "$dir" rm -rf "$target/t"
    check "tree removed" test ! -e "$target/t"
    fs_umount "$fs" "$dir"
}

make_many() { python3 "$BENCH_DIR/make-many-files.py" "$1" "$MANY_FILES"; }
walk_stat() { find "$1" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { print n + 0, s + 0 }'; }

unit_many() {
    local fs=$1 round=$2 dir target pid
    dir=$(unit_dir many "$fs" "$round")
    target=$(fs_mount "$fs" "$dir")
    measure many_create "$fs" "$round" "$dir" make_many "$target/m"
    check "created $MANY_FILES files" test "$(cat "$BENCH_OUT")" = "$MANY_FILES"
    measure many_walk "$fs" "$round" "$dir" walk_stat "$target/m"
    check "walk found $MANY_FILES files of 100 bytes" test "$(cat "$BENCH_OUT")" = "$MANY_FILES $(( MANY_FILES * 100 ))"
    pid=$(cat "$dir/daemon.pid")
    if (( pid != 0 )); then
        bench_record "many_hwm.$fs" "$round" "$(bench_status_kb "$pid" VmHWM)"
        bench_record "many_rss.$fs" "$round" "$(bench_status_kb "$pid" VmRSS)"
        bench_record "many_fds.$fs" "$round" "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    fi
    fs_umount "$fs" "$dir"
}

# Untimed, native only: brings the compiler, the sources and the tarball into
# the page cache so that no filesystem's first round pays for cold caches.
warm_up() {
    local dir=$RUNS/warmup
    bench_log "warm-up (untimed, native)"
    mkdir -p "$dir"
    if selected make; then
        cp -a "$INPUTS/zstd-project" "$dir/zstd"
        make_build "$dir/zstd" >>"$LOG" 2>&1
    fi
    if selected tree; then cat "$INPUTS/tree.tar" >/dev/null; fi
    if selected io; then dd_write "$dir/big"; dd_read "$dir/big"; rm -f "$dir/big"; fi
}

# ----------------------------------------------------------------- report ---

# key NAME FS: NAME's data file for FS (make.tcpu, native: make.native.tcpu).
key() { if [[ $1 == *.* ]]; then echo "${1%%.*}.$2.${1#*.}"; else echo "$1.$2"; fi; }
med() { bench_med "$(key "$1" "$2")"; }
fail_count() { bench_fails "$(key "$1" "$2")"; }

fmt_tput() { awk -v v="$1" -v mib="$WRITE_MIB" 'BEGIN { printf "%.0f MB/s", mib * 1.048576 / v }'; }
fmt_kb() { awk -v v="$1" 'BEGIN { printf "%.1f MB", v / 1024 }'; }

# cell NAME FS KIND: "median (ratio×)" for the table, with failures noted.
cell() {
    local name=$1 fs=$2 kind=$3 format=echo r=""
    case $kind in
        time) format=bench_fmt_time ;;
        tput) format=fmt_tput ;;
        kb) format=fmt_kb ;;
    esac
    if [[ $fs != native && ( $kind == time || $kind == tput ) ]]; then
        r=$(bench_time_ratio "$kind" "$(med "$name" "$fs")" "$(med "$name" native)")
    fi
    bench_cell "$(key "$name" "$fs")" "$format" "${r:+(${r}×)}"
}

# better A B: whether value A beats B. Every kind is stored as a cost
# (seconds, also for throughputs: see fmt_tput; kB for memory): lower wins.
better() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'
}

# table_row NAME LABEL KIND TARGET: TARGET is "<= X", ">= X" (ratio vs
# native), "abs < N" (MB, for memory), or "-" (information only).
table_row() {
    local name=$1 label=$2 kind=$3 target=$4 ours r="" value ahead fs row
    ours=$(med "$name" buildfs)
    row="| $label | $(cell "$name" native "$kind")"
    for fs in buildfs bindfs fuse-overlayfs; do row="$row | $(cell "$name" "$fs" "$kind")"; done
    if [[ $kind == time || $kind == tput ]]; then r=$(bench_time_ratio "$kind" "$ours" "$(med "$name" native)"); fi
    value=$ours
    if [[ $kind == kb && -n $ours ]]; then value=$(awk -v v="$ours" 'BEGIN { print v / 1024 }'); fi
    ahead="n/a"
    if [[ -n $ours ]]; then
        ahead="yes"
        local peers=0 peer pm
        for peer in bindfs fuse-overlayfs; do
            pm=$(med "$name" "$peer")
            [[ -n $pm ]] || continue
            peers=$(( peers + 1 ))
            better "$ours" "$pm" || ahead="no"
        done
        (( peers > 0 )) || ahead="n/a"
    fi
    echo "$row | ${r:+${r}×} | $(bench_target_shown "$target" MB) | $(bench_pass "$target" "$(key "$name" buildfs)" "$r" "$value") | $ahead |"
}

has_data() { local fs; for fs in "${ALL_FS[@]}"; do [[ ! -s $DATA/$(key "$1" "$fs") ]] || return 0; done; return 1; }

# detail_row NAME LABEL KIND: every round's value and the daemon's CPU.
detail_row() {
    local name=$1 label=$2 kind=$3 fs cpu tcpu mb=""
    if [[ $kind == tput ]]; then mb=$(awk -v mib="$WRITE_MIB" 'BEGIN { printf "%.6f", mib * 1.048576 }'); fi
    for fs in "${FS_LIST[@]}"; do
        [[ -f $DATA/$name.$fs ]] || continue
        cpu=$(bench_med "$name.$fs.cpu")
        tcpu=$(bench_med "$name.$fs.tcpu")
        echo "| $label | $fs | $(bench_rounds "$name.$fs" "$mb") | ${cpu:+$cpu s} | ${tcpu:+$tcpu s} |"
    done
}

versions_line() {
    local v
    v="bindfs $(bindfs --version 2>/dev/null | awk 'NR == 1 { print $2 }') (libfuse $(dpkg-query -W -f '${Version}' libfuse2 2>/dev/null || echo '?'), high-level API, single-threaded by default)"
    v="$v; fuse-overlayfs $(fuse-overlayfs --version 2>/dev/null | awk '/^fuse-overlayfs/ { print $3; exit }')"
    v="$v; libfuse3 $(dpkg-query -W -f '${Version}' libfuse3-3 2>/dev/null || echo '?')"
    v="$v (kernel interface $(fuse-overlayfs --version 2>/dev/null | awk '/kernel interface/ { print $NF; exit }'))"
    echo "- versions: $v"
}

write_report() {
    local status=$1 version
    version=$("$BUILDFS" --version 2>/dev/null | head -n 1 || true)
    bench_run_header "buildfs mount benchmark" "$status" "$WORK_ROOT"
    versions_line
    echo "- buildfs: ${version:-version unknown}, repo revision $(bench_revision), ${BUILDFS_INFO:-binary \`$BUILDFS\`}${BUILDFS_NOTE:+ — $BUILDFS_NOTE}"
    [[ -s $DATA/transport ]] && echo "- buildfs transport (its log's first line): $(cat "$DATA/transport")"
    echo "- compiler: $(gcc --version | head -n 1); make: $(make --version | head -n 1)"
    bench_load_line "filesystem and round"
    echo "- rounds: $ROUNDS (many-files group: $MANY_ROUNDS)$( (( QUICK )) && echo ', --quick sizes')"
    echo
    echo "## Method"
    echo
    cat <<EOF
- Filesystems, each over a fresh directory on the same disk for every round:
  **native** = the plain directory; **buildfs** = \`buildfs mount MNT --upper DIR\`;
  **bindfs** = \`bindfs --no-allow-other DIR MNT\` (its defaults);
  **fuse-overlayfs** = \`fuse-overlayfs -o lowerdir=EMPTY,upperdir=DIR,workdir=WORK MNT\`.
  Each (filesystem, round) gets its own mount, unmounted (and its daemon waited for) at the end.
- Round robin: every round runs each filesystem once, the starting one rotating
  from round to round. Tables give medians over rounds; ratios are median / native median
  for times, native median / median for throughputs (so ≥ targets are throughput ratios).
- Timing: wall clock (bash \`\$EPOCHREALTIME\`) around the one command; \`sync\` runs before
  each timed command, outside the timed region. "daemon CPU" is the filesystem process's
  user+system time during the command, from /proc/PID/stat.
- Page cache: never dropped (the machine is shared); everything is measured warm. A native
  untimed warm-up compiles the project once and reads the tarball and a ${WRITE_MIB} MiB file first.
- **make**: $(cat "$DATA/make_sources" 2>/dev/null || echo '?'); copied onto the mount untimed, then \`make -j$MAKE_JOBS\`
  timed (CC=gcc, CFLAGS=-O2, -MMD dependency files, objects archived into libzstd.a); its CPU
  seconds (make and gcc, from bash's \`time\`, plus the daemon's) are given too, being steadier than wall time on a busy machine.
  **no-op make**: $NOOP_REPS back-to-back \`make -j$MAKE_JOBS\` runs with nothing to rebuild, timed together
  (checked: nothing compiled, \`make -q\` says up to date).
- **untar**: \`tar -xf\` (as root: owners, modes, mtimes restored) of $(cat "$DATA/tree_desc" 2>/dev/null || echo '?'),
  read from the page cache; entry count checked. **find** / **ls -lR**: \`find T\` and \`ls -lR T\` to /dev/null,
  each run once untimed and then timed (the second run is the number).
- **rm -rf**: ext4 here has no journal and creating files within minutes of a bulk deletion is
  several times slower (lib.sh), so no round deletes thousands of files before another creates
  them: the trees stay until every untar/find/ls/make/many-files round is done; then each round's tree
  is mounted again (fresh mount of the same upper dir), walked once with \`find\` untimed, and
  \`rm -rf\` is timed. Timing starts only once the last bulk deletion by any bench script is
  $SETTLE_SECONDS s old.
- **write**: \`dd if=/dev/zero of=F bs=1M count=$WRITE_MIB\` (no fsync), timed until dd exits. That is when
  every byte has reached the backing filesystem's page cache on all four: through FUSE, close()
  flushes the kernel's dirty pages of the file to the daemon (FLUSH waits for them, also with
  writeback caching), and the daemons write into the backing ext4's page cache as native does
  directly. Writeback to the disk is identical for all and comes after (\`sync\`, untimed).
  **write + fsync** (info): the same with \`conv=fsync\`, so the disk write is inside the time.
  **first read** (info): \`dd if=F of=/dev/null bs=1M\` right after the write; **re-read**: the
  same again, the number for the target (page cache hot for native; for a FUSE mount whatever
  the kernel kept cached).
- **many files**: \`make-many-files.py\` creates $MANY_FILES files of 100 bytes (100 per directory), each
  closed before the next is opened, then \`find -type f -printf %s\` stats them all; counts and
  sizes checked (this is where a daemon holding a descriptor per inode hits EMFILE).
  Then the daemon's VmHWM/VmRSS and open descriptors are read from /proc/PID.
EOF
    echo
    echo "## Results (medians; ratio vs native in parentheses)"
    echo
    echo "| workload | native | buildfs | bindfs | fuse-overlayfs | buildfs ratio | target | pass | buildfs ahead of both peers |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    has_data make && table_row make "clean \`make -j$MAKE_JOBS\` (zstd lib)" time "<= 1.05"
    has_data noop && table_row noop "no-op make ($NOOP_REPS runs)" time "<= 1.1"
    has_data untar && table_row untar "untar $(awk '{ print $1 }' "$DATA/tree_desc") files" time "<= 1.3"
    has_data find && table_row find "find (2nd run)" time "<= 1.5"
    has_data ls && table_row ls "ls -lR (2nd run)" time "<= 1.5"
    has_data rm && table_row rm "rm -rf of the tree" time "<= 2.0"
    has_data write && table_row write "sequential write $WRITE_MIB MiB" tput ">= 0.7"
    has_data reread && table_row reread "re-read $WRITE_MIB MiB (hot)" tput ">= 0.8"
    has_data many_create && table_row many_hwm "daemon peak RSS (VmHWM) after $MANY_FILES files" kb "abs < 50"
    has_data make.tcpu && table_row make.tcpu "clean make: CPU s of make, gcc and daemon" time -
    has_data write_fsync && table_row write_fsync "write $WRITE_MIB MiB + fsync" tput -
    has_data read1 && table_row read1 "first read $WRITE_MIB MiB after writing it" tput -
    has_data many_create && table_row many_create "create $MANY_FILES files" time -
    has_data many_walk && table_row many_walk "stat-walk $MANY_FILES files" time -
    if has_data many_create; then
        echo
        echo "Many-files workload: no error means every round created and walked all $MANY_FILES files"
        echo "(a failed round shows as \"failed\" above). After it, per daemon (medians):"
        echo
        echo "| filesystem | VmHWM | VmRSS | open fds | rounds failed |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        local fs
        for fs in buildfs bindfs fuse-overlayfs; do
            [[ -f $DATA/many_create.$fs ]] || continue
            echo "| $fs | $(cell many_hwm "$fs" kb) | $(cell many_rss "$fs" kb) | $(med many_fds "$fs") | $(fail_count many_create "$fs") |"
        done
        for fs in buildfs bindfs fuse-overlayfs; do
            [[ -f $DATA/many_failure.$fs ]] || continue
            echo
            echo "$fs failures (the error is in the log, \`${LOG#"$REPO_DIR"/}\`):"
            awk '{ r = $1; $1 = ""; print "- round " r ":" $0 }' "$DATA/many_failure.$fs"
        done
    fi
    echo
    echo "## Every round"
    echo
    echo "Wall seconds (MB/s for throughputs) in run order; CPU columns are medians over rounds:"
    echo "the daemon's, and the total of the command (with its children) and the daemon."
    echo
    echo "| workload | filesystem | rounds | daemon CPU | total CPU |"
    echo "| --- | --- | --- | ---: | ---: |"
    detail_row make "make -j$MAKE_JOBS" time
    detail_row noop "no-op make ×$NOOP_REPS" time
    detail_row untar untar time
    detail_row find "find (2nd)" time
    detail_row ls "ls -lR (2nd)" time
    detail_row rm "rm -rf" time
    detail_row write "write (MB/s)" tput
    detail_row write_fsync "write+fsync (MB/s)" tput
    detail_row read1 "first read (MB/s)" tput
    detail_row reread "re-read (MB/s)" tput
    detail_row many_create "create many" time
    detail_row many_walk "walk many" time
    echo
    echo "Daemon peak RSS (VmHWM) at the end of each group's rounds, MB, in run order:"
    echo
    local g fs
    for g in io make tree; do
        for fs in buildfs bindfs fuse-overlayfs; do
            [[ -f $DATA/hwm_$g.$fs ]] || continue
            echo "- $g, $fs: $(awk '{ printf "%s%s", (NR > 1 ? " " : ""), ($2 == "fail" ? "fail" : sprintf("%.1f", $2 / 1024)) }' "$DATA/hwm_$g.$fs")"
        done
    done
}

# ---------------------------------------------------------------- driver ---

selected() { [[ " ${GROUPS_SEL[*]} " == *" $1 "* ]]; }

parse_args() {
    local only="" fs_arg="" item
    while (( $# > 0 )); do
        case $1 in
            --quick) ;;
            --only) [[ $# -ge 2 ]] || usage; only=$2; shift ;;
            --only=*) only=${1#--only=} ;;
            --fs) [[ $# -ge 2 ]] || usage; fs_arg=$2; shift ;;
            --fs=*) fs_arg=${1#--fs=} ;;
            --rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; ROUNDS=$2; MANY_ROUNDS=$2; shift ;;
            -h|--help) usage ;;
            *) echo "unknown argument: $1" >&2; usage ;;
        esac
        shift
    done
    GROUPS_SEL=()
    if [[ -z $only ]]; then
        GROUPS_SEL=("${ALL_GROUPS[@]}")
    else
        for item in ${only//,/ }; do
            case $item in
                io|write|read|reread) item=io ;;
                make|noop) item="make" ;;
                tree|untar|find|ls|rm) item=tree ;;
                many|rss) item=many ;;
                *) echo "unknown workload: $item" >&2; usage ;;
            esac
            selected "$item" || GROUPS_SEL+=("$item")
        done
    fi
    FS_EXPLICIT=0
    if [[ -z $fs_arg ]]; then
        FS_LIST=("${ALL_FS[@]}")
    else
        FS_EXPLICIT=1
        FS_LIST=()
        for item in ${fs_arg//,/ }; do
            [[ " ${ALL_FS[*]} " == *" $item "* ]] || { echo "unknown filesystem: $item" >&2; usage; }
            FS_LIST+=("$item")
        done
    fi
}

buildfs_has_mount() {
    [[ -x $BUILDFS ]] && "$BUILDFS" mount --help 2>&1 | grep -q 'USAGE: buildfs mount'
}

check_prerequisites() {
    local tool
    for tool in tar dd make gcc python3 find findmnt pip awk; do
        command -v "$tool" >/dev/null || die "missing tool: $tool"
    done
    [[ -c /dev/fuse ]] || die "no /dev/fuse"
    BUILDFS_NOTE=""
    if [[ " ${FS_LIST[*]} " == *" buildfs "* ]] && ! buildfs_has_mount; then
        (( FS_EXPLICIT == 0 )) || die "$BUILDFS has no 'mount' command (set BUILDFS)"
        BUILDFS_NOTE="has no \`mount\` command yet: not measured"
        bench_log "buildfs: $BUILDFS $BUILDFS_NOTE"
        local -a keep=()
        for tool in "${FS_LIST[@]}"; do [[ $tool == buildfs ]] || keep+=("$tool"); done
        FS_LIST=("${keep[@]}")
    fi
    [[ " ${FS_LIST[*]} " != *" bindfs "* ]] || command -v bindfs >/dev/null \
        || die "bindfs is not installed (apt-get install bindfs)"
    [[ " ${FS_LIST[*]} " != *" fuse-overlayfs "* ]] || command -v fuse-overlayfs >/dev/null \
        || die "fuse-overlayfs is not installed (apt-get install fuse-overlayfs)"
    [[ " ${FS_LIST[*]} " == *" native "* ]] || die "native must be among the filesystems: it is the baseline"
}

main() {
    parse_args "$@"
    mkdir -p "$(dirname "$WORK_ROOT")"
    # One run per WORK_ROOT at a time (a run's final deletion can take minutes).
    exec 9>"$WORK_ROOT.lock"
    flock -n 9 || { echo "mount.sh: another run is using $WORK_ROOT (lock $WORK_ROOT.lock)" >&2; exit 1; }
    : >"$LOG"
    check_prerequisites
    bench_run_begin
    mkdir -p "$INPUTS" "$RUNS"
    bench_log "filesystems: ${FS_LIST[*]}; groups: ${GROUPS_SEL[*]}; rounds: $ROUNDS (many: $MANY_ROUNDS)"

    if [[ " ${FS_LIST[*]} " == *" buildfs "* ]]; then bench_copy_binary "$INPUTS"; fi
    if selected make; then prepare_make_project; fi
    if selected tree; then prepare_tarball; fi
    warm_up
    bench_wait_for_settle

    if selected io; then for_rounds io "$ROUNDS"; fi
    if selected make; then for_rounds make "$ROUNDS"; fi
    if selected tree; then for_rounds tree "$ROUNDS"; fi
    if selected many; then for_rounds many "$MANY_ROUNDS"; fi
    if selected tree; then for_rounds tree_rm "$ROUNDS"; fi
    BENCH_RUN_STATUS=complete
}

main "$@"
