#!/usr/bin/env bash
# shellcheck disable=SC2016 # the bash -c scripts take "$1" "$2" on purpose
# Remote-store benchmark at real round-trip times (issue 14): buildfs against
# nginx (WebDAV, the config Bazel documents) on 127.0.0.1, reached through
# bench/latency-proxy.py at RTT 0, 10 and 50 ms, compared with what CI cache
# actions do through the same proxy in the same run (one tar.zst per key).
#
#   bench/remote.sh
#
# Steps, each round alternating which side goes first; medians, ratios
# buildfs / tar.zst; per step nginx's request count and bytes each way:
#   first   first save: `buildfs import --store URL` into an empty store (and
#           a fresh --cache-dir) vs `tar | zstd -T0 -3 | curl -T`
#   change  save after make-build-tree.sh --change N (two sources edited and
#           rebuilt: ~12 files differ) on top of the previous snapshot, with
#           the runner's cache dir vs the same tar way
#   restore restore on an empty cache: `buildfs export` with a fresh
#           --cache-dir vs `curl | zstd -d | tar -x`
#   mount   `buildfs mount --from` over the remote with a fresh --cache-dir:
#           time until mounted, first byte of the tree's largest file, then
#           every file read (`tar -cf - . | cat`): mount start to last byte,
#           against the restore's tar.zst time; and the same read through a
#           mount of the snapshot in a local store (the FUSE read path's floor)
#   trace   job 1 mounts the snapshot (fresh cache), reads what an incremental
#           build reads (project/ and toolchain/usr/include) and commits; job
#           2 mounts that commit on a fresh cache, spends TRACE_PAUSE s on
#           setup, then reads the same files: how many of its chunk reads
#           waited on the server (`buildfs stats`), against a job that does
#           the same on the snapshot without a trace
# RTT 0 goes through the proxy too (D = 0), so the baseline pays the same hop.
# A buildfs command still running after CAP seconds is stopped and recorded
# as ">CAP"; when that happens in a step's first round at an RTT, the step's
# later rounds at that RTT skip buildfs (the tar side still runs).
#
# Environment:
#   BUILDFS    buildfs binary (default: <repo>/.build-release/buildfs;
#              scripts/build-release prints the static one); copied first,
#              so a rebuild during the run does not change what is measured
#   ROUNDS     rounds per RTT (default 3)
#   RTTS       round-trip times in ms (default "0 10 50")
#   RATE_MBIT  the link's bandwidth each way in Mbit/s, shared by every
#              connection (default 0: not limited)
#   CAP        seconds a buildfs command may take (default 150)
#   STEPS      steps to run (default "first change restore mount trace")
#   TRACE_PAUSE  seconds between mount and reads in the trace step (default 0:
#              the job reads at once, racing the prefetch)
#   WORK_ROOT  scratch dir (default bench/work/remote, git-ignored), removed
#              at the end unless KEEP_WORK=1
#   RESULTS    report (default bench/results/remote.md)
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
bench_paths remote
ROUNDS=${ROUNDS:-3}
RTTS=${RTTS:-0 10 50}
RATE_MBIT=${RATE_MBIT:-0}
CAP=${CAP:-150}
STEPS=${STEPS:-first change restore mount trace}
TRACE_PAUSE=${TRACE_PAUSE:-0}
KEEP_WORK=${KEEP_WORK:-0}
LOG=$BENCH_DIR/work/remote.log

trap 'echo "remote.sh: failed at line $LINENO; see $LOG" >&2' ERR

[[ -x $BUILDFS ]] || { echo "no buildfs binary at $BUILDFS (scripts/build-release)" >&2; exit 1; }
for tool in nginx curl zstd tar python3 timeout; do
    command -v "$tool" >/dev/null || { echo "needs $tool (scripts/install-deps)" >&2; exit 1; }
done
if [[ " $STEPS " == *" mount "* && ! -w /dev/fuse ]]; then
    echo "the mount step needs /dev/fuse (and root); run with STEPS without mount" >&2; exit 1
fi

mkdir -p "$WORK_ROOT"
WORK_ROOT=$(realpath "$WORK_ROOT")
TREE=$WORK_ROOT/tree DATA=$WORK_ROOT/data TRASH=$WORK_ROOT/trash MNT=$WORK_ROOT/mnt BIN=$WORK_ROOT/buildfs
mkdir -p "$DATA" "$TRASH" "$MNT"
: >"$LOG"
BINARY_LINE=$(bench_binary_line "$BUILDFS")   # before the copy: names the binary given
cp "$BUILDFS" "$BIN"
# What the binary was built from, as far as this checkout says now (others
# may commit while this runs).
REVISION=$(bench_revision)
SOURCES_STATE=$(git -C "$BENCH_DIR/.." status --short -- Sources | awk '{ printf "%s%s", sep, $2; sep = ", " }')
# Scratch trees are moved aside, not deleted, while measuring (lib.sh:
# creating files right after a bulk deletion is slower on this ext4).
retire() { if [[ -e $1 ]]; then mv "$1" "$TRASH/$(basename "$1").$RANDOM$RANDOM"; fi; }
record() { echo "$2" >>"$DATA/$1"; }

bench_nginx_start "$WORK_ROOT/nginx"
DIRECT=http://127.0.0.1:$BENCH_NGINX_PORT/cache
MOUNTED=
cleanup() {
    if [[ -n $MOUNTED ]]; then "$BIN" umount "$MOUNTED" || umount -l "$MOUNTED" || true; fi
    bench_proxy_stop
    bench_nginx_stop
    if [[ $KEEP_WORK != 1 ]]; then bench_bulk_delete "$WORK_ROOT"; fi
}
trap cleanup EXIT

# -------------------------------------------------------------------- tree --
bench_log "building the tree (make-build-tree.sh)"
"$BENCH_DIR/make-build-tree.sh" "$TREE" >>"$LOG" 2>&1
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
TREE_FILES=$(find "$TREE" -type f | wc -l)
read -r LARGEST_BYTES LARGEST < <(find "$TREE" -type f -printf '%s %P\n' | sort -n | tail -n 1)

# What restores and mounts read: put there directly (no proxy), untimed.
bench_log "the snapshot and the archive to restore (directly)"
"$BIN" import "$TREE" --key base --store "$DIRECT/main" --cache-dir "$WORK_ROOT/cache-runner" >>"$LOG" 2>&1
tar -cf - -C "$WORK_ROOT" tree | zstd -T0 -3 -q | curl -sf -T - "$DIRECT/archives/base.tar.zst"
# The same snapshot in a local store: a mount of it reads at the FUSE read
# path's own speed, the floor for reading through a mount over the network.
"$BIN" import "$TREE" --key base --store "$WORK_ROOT/local-store" >>"$LOG" 2>&1
ARCHIVE_BYTES=$(stat -c %s "$WORK_ROOT/nginx/data/cache/archives/base.tar.zst")
sync
# Restores create thousands of files: not right after a bulk deletion (lib.sh).
bench_wait_for_settle

# ------------------------------------------------------------------- steps --
# measure NAME COMMAND...: times COMMAND (capped), records the time in
# DATA/NAME and what nginx saw in DATA/NAME.req; fails when it was capped.
measure() {
    local name=$1 mark t
    shift
    mark=$(bench_nginx_mark)
    sync
    t=$(bench_time_capped "$CAP" "$@" 2>>"$LOG") || { bench_log "$name failed: $*"; exit 1; }
    record "$name" "$t"
    record "$name.req" "$(bench_nginx_step "$mark")"
    cut -d' ' -f1 /proc/loadavg >>"$DATA/load"
    [[ $t != '>'* ]]
}
tar_save() {   # tar_save NAME: the tree as one tar.zst, streamed to archives/NAME
    measure "$RTT/$STEP-tar" bash -o pipefail -c 'tar -cf - -C "$1" tree | zstd -T0 -3 -q | curl -sf -T - "$2"' \
        _ "$WORK_ROOT" "$PURL/archives/$1.tar.zst"
}
# Each step_X SIDE ROUND runs one side (buildfs or tar) of step X.
step_first() {
    if [[ $1 == tar ]]; then tar_save "first-$RTT-$2"; return 0; fi
    measure "$RTT/first-buildfs" "$BIN" import "$TREE" --key base --store "$PURL/first-$RTT-$2" \
        --cache-dir "$WORK_ROOT/cache-first" || SKIP+=" first"
    retire "$WORK_ROOT/cache-first"
}
step_change() {
    if [[ $1 == tar ]]; then tar_save "change-$RTT-$2"; return 0; fi
    measure "$RTT/change-buildfs" "$BIN" import "$TREE" --key "change-$RTT-$2" --store "$PURL/main" \
        --cache-dir "$WORK_ROOT/cache-runner" || SKIP+=" change"
}
step_restore() {
    local out=$WORK_ROOT/out
    mkdir -p "$out"
    if [[ $1 == tar ]]; then
        measure "$RTT/restore-tar" bash -o pipefail -c 'curl -sf "$1" | zstd -d -q | tar -xf - -C "$2"' \
            _ "$PURL/archives/base.tar.zst" "$out"
    else
        measure "$RTT/restore-buildfs" "$BIN" export "$out" --from base --store "$PURL/main" \
            --cache-dir "$WORK_ROOT/cache-fresh" || SKIP+=" restore"
    fi
    retire "$out"
    retire "$WORK_ROOT/cache-fresh"
}
# job_reads SNAPSHOT NAME: a job on a fresh cache that mounts SNAPSHOT,
# waits TRACE_PAUSE s, and reads what a build reads; records the read time
# in NAME and "waited-chunk-reads chunk-reads" in NAME.chunks. With a third
# argument it commits under that key before unmounting.
job_reads() {
    local upper=$WORK_ROOT/upper-job start stats
    mkdir -p "$upper"
    "$BIN" mount "$MNT" --upper "$upper" --from "$1" --store "$PURL/main" --cache-dir "$WORK_ROOT/cache-job" >>"$LOG" 2>&1
    MOUNTED=$MNT
    sleep "$TRACE_PAUSE"
    start=$EPOCHREALTIME
    (cd "$MNT" && tar -cf - project toolchain/usr/include | cat >/dev/null)
    record "$2" "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')"
    stats=$("$BIN" stats "$MNT" --json --store "$PURL/main" --cache-dir "$WORK_ROOT/cache-job")
    record "$2.chunks" "$(python3 -c 'import json, sys; m = json.load(sys.stdin)["mount"]
print(m.get("chunksFetchedOnRead", 0), m.get("chunkCacheHits", 0) + m.get("chunkCacheMisses", 0))' <<<"$stats")"
    if [[ -n ${3:-} ]]; then "$BIN" commit "$MNT" --key "$3" --store "$PURL/main" --cache-dir "$WORK_ROOT/cache-job" >>"$LOG" 2>&1; fi
    "$BIN" umount "$MNT" >>"$LOG" 2>&1
    MOUNTED=
    retire "$upper"
    retire "$WORK_ROOT/cache-job"
}
step_trace() {
    job_reads base "$RTT/trace-first" "traced-$RTT-$2"
    job_reads "traced-$RTT-$2" "$RTT/trace-second"
    job_reads base "$RTT/trace-none"
}
step_mount() {
    local upper=$WORK_ROOT/upper mark start ready first read total
    mkdir -p "$upper"
    mark=$(bench_nginx_mark)
    sync
    start=$EPOCHREALTIME
    ready=$(bench_time_capped "$CAP" "$BIN" mount "$MNT" --upper "$upper" --from base --store "$PURL/main" \
        --cache-dir "$WORK_ROOT/cache-fresh" 2>>"$LOG")
    MOUNTED=$MNT
    first=$ready read=$ready
    if [[ $ready != '>'* ]]; then
        first=$(bench_time_capped "$CAP" dd if="$MNT/$LARGEST" of=/dev/null bs=1 count=1 status=none 2>>"$LOG")
        read=$(bench_time_capped "$CAP" bash -o pipefail -c 'tar -cf - -C "$1" . | cat >/dev/null' _ "$MNT" 2>>"$LOG")
    fi
    total=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    if [[ $read == '>'* ]]; then total=$read; SKIP+=" mount"; fi
    record "$RTT/mount-ready" "$ready"
    record "$RTT/mount-first-byte" "$first"
    record "$RTT/mount-buildfs" "$total"
    record "$RTT/mount-buildfs.req" "$(bench_nginx_step "$mark")"
    cut -d' ' -f1 /proc/loadavg >>"$DATA/load"
    "$BIN" umount "$MNT" >>"$LOG" 2>&1
    MOUNTED=
    retire "$upper"
    retire "$WORK_ROOT/cache-fresh"
    mkdir -p "$upper"
    "$BIN" mount "$MNT" --upper "$upper" --from base --store "$WORK_ROOT/local-store" >>"$LOG" 2>&1
    MOUNTED=$MNT
    record "$RTT/mount-local" "$(bench_time_capped "$CAP" bash -o pipefail -c 'tar -cf - -C "$1" . | cat >/dev/null' _ "$MNT" 2>>"$LOG")"
    "$BIN" umount "$MNT" >>"$LOG" 2>&1
    MOUNTED=
    retire "$upper"
}

CHANGE=0
START_TIME=$EPOCHREALTIME
for RTT in $RTTS; do
    bench_proxy_start "$BENCH_NGINX_PORT" "$(awk -v r="$RTT" 'BEGIN { print r / 2 }')" "$RATE_MBIT"
    PURL=http://127.0.0.1:$BENCH_PROXY_PORT/cache
    mkdir -p "$DATA/$RTT"
    SKIP=""
    for (( r = 1; r <= ROUNDS; r++ )); do
        for STEP in $STEPS; do
            if [[ $STEP == change ]]; then
                CHANGE=$(( CHANGE + 1 ))
                "$BENCH_DIR/make-build-tree.sh" --change "$CHANGE" "$TREE" >>"$LOG" 2>&1
            fi
            sides=(buildfs tar)
            if (( r % 2 == 0 )); then sides=(tar buildfs); fi
            for side in "${sides[@]}"; do
                if [[ ( $STEP == mount || $STEP == trace ) && $side == tar ]]; then continue; fi   # against restore's
                if [[ $side == buildfs && " $SKIP " == *" $STEP "* ]]; then
                    bench_log "RTT $RTT ms, round $r: $STEP: buildfs skipped (round 1 took more than ${CAP} s)"
                    continue
                fi
                bench_log "RTT $RTT ms, round $r: $STEP, $side"
                "step_$STEP" "$side" "$r"
            done
        done
    done
    bench_proxy_stop
    cp "$BENCH_PROXY_STATS" "$DATA/$RTT/proxy.json" 2>/dev/null || true
done
RUN_MINUTES=$(awk -v a="$START_TIME" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) / 60 }')

# ------------------------------------------------------------------ report --
med() { if [[ -s $DATA/$1 ]]; then bench_median_capped "$DATA/$1"; else echo "n/a"; fi; }
# medreq NAME FIELD: median of field FIELD (1 requests, 2 bytes to the
# server, 3 bytes from it, 4 connections) of NAME's rounds, ">=N" when a
# capped round is the median (the requests it made before it was stopped).
medreq() {
    [[ -s $DATA/$1.req ]] || { echo "n/a"; return 0; }
    local value
    value=$(cut -d' ' -f"$2" "$DATA/$1.req" | bench_median /dev/stdin)
    if [[ $(med "$1") == '>'* ]]; then echo ">=$value"; else echo "$value"; fi
}
# ratio A B: A / B, "> A/B" when A is capped, n/a when either is missing.
ratio() {
    local a=${1#>=} b=$2
    if [[ $a == n/a || $b == n/a || $b == '>'* ]]; then echo "n/a"; return 0; fi
    if [[ $1 == '>'* ]]; then
        awk -v a="${a#>}" -v b="$b" 'BEGIN { printf "> %.1f", a / b }'
    else
        awk -v a="$a" -v b="$b" 'BEGIN { printf (a / b < 10 ? "%.2f" : "%.0f"), a / b }'
    fi
}
# verdict VALUE LIMIT: PASS when VALUE <= LIMIT (capped values FAIL).
verdict() {
    case $1 in n/a) echo "n/a" ;; '>'*) echo "FAIL" ;;
        *) awk -v v="${1#>= }" -v l="$2" 'BEGIN { print (v + 0 <= l + 0) ? "PASS" : "FAIL" }' ;; esac
}
mb() {
    case $1 in n/a) echo n/a ;;
        *) awk -v b="${1#>=}" -v p="${1%%[0-9]*}" 'BEGIN { if (b < 1e6) printf "%s%.1f kB", p, b / 1e3; else printf "%s%.1f MB", p, b / 1e6 }' ;;
    esac
}
secs() { case $1 in n/a) echo n/a ;; '>'*) echo "> ${1#>} s" ;; *) awk -v s="$1" 'BEGIN { printf "%.3f s", s }' ;; esac; }
# the issue's targets are for RTT 10 ms; at RTT 50 ms 1.5 times them.
limit() { awk -v t="$1" -v r="$RTT" 'BEGIN { print (r + 0 >= 50) ? t * 1.5 : t }'; }
reqs() { echo "$(medreq "$1" 1) req ($(medreq "$1" 4) conn), $(mb "$(medreq "$1" 2)") up, $(mb "$(medreq "$1" 3)") down"; }

{
    echo "# buildfs remote-store benchmark at real round-trip times (issue 14)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC') (end of the run, which took $RUN_MINUTES min)"
    bench_machine_lines "$WORK_ROOT"
    echo "- load: 2 cores shared with other engineers' builds and tests during the run; 1-min load average after each step: $(sort -g "$DATA/load" | head -n 1) to $(sort -g "$DATA/load" | tail -n 1) (median $(bench_median "$DATA/load"))"
    echo "- server: $(nginx -v 2>&1 | sed 's/^nginx version: //') with WebDAV PUT on 127.0.0.1, Bazel's documented config; curl $(curl --version | awk 'NR == 1 { print $2 }'), zstd $(zstd -V | grep -o 'v[0-9.]*' | head -n 1), $(tar --version | head -n 1)"
    if [[ $RATE_MBIT == 0 ]]; then bandwidth="bandwidth not limited (pipelined)"; else bandwidth="each direction a link of $RATE_MBIT Mbit/s shared by all connections"; fi
    echo "- network: bench/latency-proxy.py between every client and nginx, each chunk of bytes held RTT/2 each way, order kept, $bandwidth; RTT 0 goes through it too. TCP connects are not delayed by it (a real network adds one RTT per new connection)"
    echo "- buildfs: $("$BIN" --version 2>/dev/null || echo '?'), repo revision $REVISION when the run started, $BINARY_LINE${SOURCES_STATE:+; Sources/ had uncommitted changes of other work when the run started: $SOURCES_STATE}"
    echo "- tree: $(mb "$TREE_BYTES") (du -sb), $TREE_FILES files (make-build-tree.sh); its tar.zst (zstd -3): $(mb "$ARCHIVE_BYTES"); first byte read from its largest file, $LARGEST ($(mb "$LARGEST_BYTES"))"
    echo "- method: $ROUNDS rounds per RTT, buildfs and tar.zst alternating which goes first; medians; \`sync\` before each timed command; scratch trees moved aside, not deleted, while measuring; a buildfs command is stopped after $CAP s (\"> $CAP s\"), and a step whose first round was stopped skips buildfs in its later rounds at that RTT"
    echo "- requests, connections and bytes: from nginx's access log, per step (median over rounds): requests, distinct connections, \$request_length (up: headers and bodies) and \$bytes_sent (down)"
    echo
    echo "Targets are issue 14's, for RTT 10 ms; at RTT 50 ms 1.5 times them (request counts do not depend on the RTT and keep theirs); RTT 0 is shown against the RTT 10 targets."
    echo
    for RTT in $RTTS; do
        rt=$(med "$RTT/restore-tar")
        echo "## RTT $RTT ms"
        echo
        echo "| step | buildfs | tar.zst | ratio | buildfs requests, bytes | tar.zst requests, bytes | target | verdict |"
        echo "| --- | ---: | ---: | ---: | --- | --- | --- | --- |"
        b=$(med "$RTT/first-buildfs") t=$(med "$RTT/first-tar") x=$(ratio "$b" "$t")
        echo "| first save (import) vs tar \| zstd -T0 -3 \| curl -T: time | $(secs "$b") | $(secs "$t") | $x | $(reqs "$RTT/first-buildfs") | $(reqs "$RTT/first-tar") | ≤ $(limit 1.0)× | $(verdict "$x" "$(limit 1.0)") |"
        bb=$(medreq "$RTT/first-buildfs" 2) bt=$(medreq "$RTT/first-tar" 2) x=$(ratio "$bb" "$bt")
        if [[ $bb == '>='* ]]; then x="≥ ${x#> }"; fi
        echo "| first save: bytes sent | $(mb "$bb") | $(mb "$bt") | $x | | | ≤ 1.0× | $(verdict "${x#≥ }" 1.0) |"
        b=$(med "$RTT/change-buildfs") t=$(med "$RTT/change-tar") x=$(ratio "$b" "$t")
        echo "| save after a small change (import) vs the same tar way: time | $(secs "$b") | $(secs "$t") | $x | $(reqs "$RTT/change-buildfs") | $(reqs "$RTT/change-tar") | ≤ $(limit 0.3)× | $(verdict "$x" "$(limit 0.3)") |"
        n=$(medreq "$RTT/change-buildfs" 1)
        echo "| save after a small change: requests | $n | $(medreq "$RTT/change-tar" 1) | | | | ≤ 20 | $(verdict "${n#>=}" 20) |"
        b=$(med "$RTT/restore-buildfs") x=$(ratio "$b" "$rt")
        echo "| restore, empty cache (export) vs curl \| zstd -d \| tar -x | $(secs "$b") | $(secs "$rt") | $x | $(reqs "$RTT/restore-buildfs") | $(reqs "$RTT/restore-tar") | ≤ $(limit 1.0)× | $(verdict "$x" "$(limit 1.0)") |"
        b=$(med "$RTT/mount-buildfs") x=$(ratio "$b" "$rt")
        echo "| mount --from (empty cache), then read every file vs the tar restore | $(secs "$b") | $(secs "$rt") | $x | $(reqs "$RTT/mount-buildfs") | | ≤ $(limit 1.5)× | $(verdict "$x" "$(limit 1.5)") |"
        b=$(med "$RTT/mount-local") x=$(ratio "$(med "$RTT/mount-buildfs")" "$b")
        echo "| the same read through a mount of a local store (the FUSE read path's floor; not a target) vs the remote mount above | $(secs "$b") | | remote / local: $x | | | | |"
        b=$(med "$RTT/mount-ready")
        echo "| mount: usable (the mount command returns) | $(secs "$b") | | | | | ≤ $(limit 0.3) s | $(verdict "$b" "$(limit 0.3)") |"
        b=$(med "$RTT/mount-first-byte")
        echo "| mount: first byte of $LARGEST | $(secs "$b") | | | | | ≤ $(limit 0.1) s | $(verdict "$b" "$(limit 0.1)") |"
        w2=$(cut -d' ' -f1 "$DATA/$RTT/trace-second.chunks" 2>/dev/null | bench_median /dev/stdin 2>/dev/null || echo n/a)
        n2=$(cut -d' ' -f2 "$DATA/$RTT/trace-second.chunks" 2>/dev/null | bench_median /dev/stdin 2>/dev/null || echo n/a)
        w0=$(cut -d' ' -f1 "$DATA/$RTT/trace-none.chunks" 2>/dev/null | bench_median /dev/stdin 2>/dev/null || echo n/a)
        n0=$(cut -d' ' -f2 "$DATA/$RTT/trace-none.chunks" 2>/dev/null | bench_median /dev/stdin 2>/dev/null || echo n/a)
        b=$(med "$RTT/trace-second") t=$(med "$RTT/trace-none")
        share=$(awk -v w="$w2" -v n="$n2" 'BEGIN { if (n + 0 > 0) printf "%.3f", w / n; else print "n/a" }')
        echo "| mount: a second job whose reads match the trace finds its data local: chunk reads that waited on the server, after ${TRACE_PAUSE} s of setup (read time) | $w2 of $n2 ($(secs "$b")) | without a trace: $w0 of $n0 ($(secs "$t")) | $(ratio "$b" "$t") | | | ≤ 5% waited | $(verdict "$share" 0.05) |"
        echo
    done
    echo "## Details (each round, in run order)"
    echo
    for RTT in $RTTS; do
        for f in first-buildfs first-tar change-buildfs change-tar restore-buildfs restore-tar mount-ready mount-first-byte mount-buildfs mount-local \
                 trace-first trace-second trace-none trace-first.chunks trace-second.chunks trace-none.chunks; do
            [[ -s $DATA/$RTT/$f ]] || continue
            echo "- RTT $RTT, $f: $(tr '\n' ' ' <"$DATA/$RTT/$f")"
            if [[ -s $DATA/$RTT/$f.req ]]; then
                echo "  (requests bytes-up bytes-down connections GET PUT HEAD: $(paste -sd';' "$DATA/$RTT/$f.req" | sed 's/;/; /g'))"
            fi
        done
        if [[ -s $DATA/$RTT/proxy.json ]]; then echo "- RTT $RTT, the proxy's counters over the whole RTT: \`$(cat "$DATA/$RTT/proxy.json")\`"; fi
    done
    if grep -q '^imported .*change-' "$LOG"; then
        echo "- buildfs output of the last small-change save: \`$(grep '^imported .*change-' "$LOG" | tail -n 1)\`"
        echo "- its transfers: \`$(grep -A1 '^imported .*change-' "$LOG" | tail -n 1 | sed 's/^ *//')\`"
    fi
} >"$RESULTS"
bench_log "wrote $RESULTS"
cat "$RESULTS"
