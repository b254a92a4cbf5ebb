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

# bench_proxy_start TARGET_PORT DELAY_MS: bench/latency-proxy.py on a free
# 127.0.0.1 port, forwarding to 127.0.0.1:TARGET_PORT with every chunk held
# DELAY_MS each way (RTT = 2 DELAY_MS). Sets BENCH_PROXY_PID and
# BENCH_PROXY_PORT; its counters go to BENCH_PROXY_STATS (JSON, at stop).
bench_proxy_start() {
    local out i
    out=$(mktemp)
    BENCH_PROXY_STATS=${BENCH_PROXY_STATS:-$out.json}
    python3 "$_BENCH_LIB_DIR/latency-proxy.py" --target "127.0.0.1:$1" --delay-ms "$2" \
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
