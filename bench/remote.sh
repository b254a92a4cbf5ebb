#!/usr/bin/env bash
# Remote-store benchmark: buildfs against a real nginx (WebDAV, the config
# Bazel documents) on 127.0.0.1, compared with what CI caches do over HTTP:
# a tar.zst downloaded with curl and extracted, or built and uploaded.
#
#   bench/remote.sh
#
# Measurements (alternating rounds, medians, ratios buildfs / baseline):
#   1. restore of the ~300 MB build tree (make-build-tree.sh) on a machine
#      whose cache is empty: `buildfs export --store URL` vs
#      `curl URL/x.tar.zst | zstd -d | tar -x`; also buildfs with its cache warm
#   2. saving the tree again after a small change (make-build-tree.sh
#      --change N, 12 files): `buildfs import --store URL` vs
#      `tar | zstd -T0 -3 | curl -T`: time and bytes sent (nginx's
#      $request_length of every request of the step)
#
# Environment:
#   BUILDFS    buildfs binary (default: <repo>/.build/release/buildfs)
#   ROUNDS     rounds (default 5)
#   WORK_ROOT  scratch dir (default bench/work/remote, git-ignored), removed
#              at the end unless KEEP_WORK=1
#   RESULTS    report (default bench/results/remote.md)
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
BUILDFS=${BUILDFS:-$REPO_DIR/.build/release/buildfs}
ROUNDS=${ROUNDS:-5}
WORK_ROOT=${WORK_ROOT:-$BENCH_DIR/work/remote}
KEEP_WORK=${KEEP_WORK:-0}
RESULTS=${RESULTS:-$BENCH_DIR/results/remote.md}
LOG=$BENCH_DIR/work/remote.log

TREE=$WORK_ROOT/tree
NGINX=$WORK_ROOT/nginx
DATA=$WORK_ROOT/data
TRASH=$WORK_ROOT/trash

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$LOG" >&2; }
trap 'echo "remote.sh: failed at line $LINENO; see $LOG" >&2' ERR

[[ -x $BUILDFS ]] || { echo "no buildfs binary at $BUILDFS (swift build -c release --static-swift-stdlib --product buildfs)" >&2; exit 1; }
for tool in nginx curl zstd tar; do command -v "$tool" >/dev/null || { echo "needs $tool (scripts/install-deps)" >&2; exit 1; }; done

mkdir -p "$WORK_ROOT" "$DATA" "$TRASH" "$NGINX/data/cache" "$NGINX/temp"
: > "$LOG"
# Scratch trees are moved aside, not deleted, while measuring (lib.sh:
# creating files right after a bulk deletion is slower on this ext4).
retire() { mv "$1" "$TRASH/$(basename "$1").$RANDOM$RANDOM"; }
now() { date +%s.%N; }
record() { echo "$2" >> "$DATA/$1"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ------------------------------------------------------------------ server --
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT/cache
cat > "$NGINX/nginx.conf" <<CONF
daemon off;
master_process off;
user root;
worker_processes 1;
pid $NGINX/nginx.pid;
error_log $NGINX/error.log;
events { worker_connections 1024; }
http {
  log_format bench '\$request_method \$uri \$status \$request_length \$bytes_sent';
  access_log $NGINX/access.log bench;
  client_body_temp_path $NGINX/temp/body;
  proxy_temp_path $NGINX/temp/proxy;
  fastcgi_temp_path $NGINX/temp/fastcgi;
  uwsgi_temp_path $NGINX/temp/uwsgi;
  scgi_temp_path $NGINX/temp/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:$PORT;
    location /cache/ {
      root $NGINX/data;
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 2G;
      allow all;
    }
  }
}
CONF
nginx -p "$NGINX" -c "$NGINX/nginx.conf" & NGINX_PID=$!
cleanup() {
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    if [[ $KEEP_WORK != 1 ]]; then bench_bulk_delete "$WORK_ROOT"; fi
}
trap cleanup EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

# Sum of request bytes (requests incl. bodies) logged after line $1.
request_bytes_since() { tail -n +"$(( $1 + 1 ))" "$NGINX/access.log" | awk '{ s += $4 } END { print s + 0 }'; }
puts_since() { tail -n +"$(( $1 + 1 ))" "$NGINX/access.log" | awk '$1 == "PUT" { n++ } END { print n + 0 }'; }
log_lines() { wc -l < "$NGINX/access.log"; }

# -------------------------------------------------------------------- tree --
log "building the tree (make-build-tree.sh)"
"$BENCH_DIR/make-build-tree.sh" "$TREE" >>"$LOG" 2>&1
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
TREE_FILES=$(find "$TREE" -type f | wc -l)

log "first upload of both"
"$BUILDFS" import "$TREE" --key base --store "$URL" --cache-dir "$WORK_ROOT/cache-runner" >>"$LOG" 2>&1
tar -cf - -C "$WORK_ROOT" tree | zstd -T0 -3 -q > "$WORK_ROOT/base.tar.zst"
curl -sf -T "$WORK_ROOT/base.tar.zst" "$URL/archives/base.tar.zst"
ARCHIVE_BYTES=$(stat -c %s "$WORK_ROOT/base.tar.zst")
sync

# Restores create thousands of files: not right after a bulk deletion (lib.sh).
bench_wait_for_settle

# ----------------------------------------------------------------- restore --
# restore_buildfs cold|warm: export on a machine whose cache is empty (a
# fresh cache directory) or holds everything (the one the cold run filled).
restore_buildfs() {
    local out=$WORK_ROOT/out-$1 cache=$WORK_ROOT/cache-fresh start end
    if [[ $1 == cold ]]; then rm -rf "$cache"; fi   # a small store, not a bulk deletion of a tree
    sync; start=$(now)
    "$BUILDFS" export "$out" --from base --store "$URL" --cache-dir "$cache" >>"$LOG" 2>&1
    end=$(now)
    record "restore-buildfs-$1" "$(elapsed "$start" "$end")"
    retire "$out"
}
restore_tar() {
    local out=$WORK_ROOT/out-t start end
    mkdir -p "$out"
    sync; start=$(now)
    curl -sf "$URL/archives/base.tar.zst" | zstd -d -q | tar -xf - -C "$out"
    end=$(now)
    record restore-tar "$(elapsed "$start" "$end")"
    retire "$out"
}
log "restore: $ROUNDS alternating rounds"
for (( r = 1; r <= ROUNDS; r++ )); do
    if (( r % 2 )); then restore_buildfs cold; restore_buildfs warm; restore_tar
    else restore_tar; restore_buildfs cold; restore_buildfs warm; fi
done
RESTORE_GETS=$(awk '$1 == "GET" && $2 ~ /\/cas\// { n++ } END { print n + 0 }' "$NGINX/access.log")

# -------------------------------------------------------------------- save --
log "save after a small change: $ROUNDS alternating rounds"
save_buildfs() {
    local r=$1 start end before
    before=$(log_lines)
    sync; start=$(now)
    "$BUILDFS" import "$TREE" --key "change-$r" --store "$URL" --cache-dir "$WORK_ROOT/cache-runner" >>"$LOG" 2>&1
    end=$(now)
    record save-buildfs "$(elapsed "$start" "$end")"
    record save-buildfs-bytes "$(request_bytes_since "$before")"
    record save-buildfs-puts "$(puts_since "$before")"
}
save_tar() {
    local r=$1 start end before
    before=$(log_lines)
    sync; start=$(now)
    tar -cf - -C "$WORK_ROOT" tree | zstd -T0 -3 -q | curl -sf -T - "$URL/archives/change-$r.tar.zst"
    end=$(now)
    record save-tar "$(elapsed "$start" "$end")"
    record save-tar-bytes "$(request_bytes_since "$before")"
}
for (( r = 1; r <= ROUNDS; r++ )); do
    "$BENCH_DIR/make-build-tree.sh" --change "$r" "$TREE" >>"$LOG" 2>&1
    if (( r % 2 )); then save_buildfs "$r"; save_tar "$r"; else save_tar "$r"; save_buildfs "$r"; fi
done

# ------------------------------------------------------------------ report --
med() { bench_median "$DATA/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
rc=$(med restore-buildfs-cold); rw=$(med restore-buildfs-warm); rt=$(med restore-tar)
sb=$(med save-buildfs); st=$(med save-tar); bb=$(med save-buildfs-bytes); bt=$(med save-tar-bytes)
{
    echo "# buildfs remote-store benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    bench_machine_lines "$WORK_ROOT"
    echo "- server: $(nginx -v 2>&1 | sed 's/^nginx version: //') with WebDAV PUT on 127.0.0.1 (loopback), Bazel's documented config; curl $(curl --version | awk 'NR == 1 { print $2 }')"
    echo "- buildfs: $("$BUILDFS" --version 2>/dev/null || echo '?'), repo revision $(git -C "$REPO_DIR" rev-parse --short HEAD)$(git -C "$REPO_DIR" diff --quiet || echo ' + uncommitted changes')"
    echo "- tree: $(mb "$TREE_BYTES") (du -sb), $TREE_FILES files (make-build-tree.sh); its tar.zst (zstd -3): $(mb "$ARCHIVE_BYTES")"
    echo "- method: $ROUNDS alternating rounds, medians; \`sync\` before each timed command; trees moved aside, not deleted, while measuring"
    echo
    echo "| step | buildfs | baseline | ratio |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| restore, empty cache (export) vs curl \| zstd -d \| tar -x | ${rc} s | ${rt} s | $(ratio "$rc" "$rt") |"
    echo "| restore, warm cache (export) vs the same | ${rw} s | ${rt} s | $(ratio "$rw" "$rt") |"
    echo "| save after a small change (import) vs tar \| zstd \| curl -T: time | ${sb} s | ${st} s | $(ratio "$sb" "$st") |"
    echo "| the same: bytes sent to the server | $(mb "$bb") | $(mb "$bt") | $(ratio "$bb" "$bt") |"
    echo
    echo "Bytes sent are nginx's \$request_length summed over the step's requests (headers and"
    echo "bodies; for buildfs also the HEAD checks, the ref and its prefix index entries)."
    echo "buildfs sends objects uncompressed (the Bazel CAS stores what it is sent), so the"
    echo "first upload is bigger than the tar.zst; after that only changed objects travel."
    echo
    echo "## Details"
    echo
    for f in restore-buildfs-cold restore-buildfs-warm restore-tar save-buildfs save-tar save-buildfs-bytes save-tar-bytes save-buildfs-puts; do
        echo "- $f, in run order: $(tr '\n' ' ' < "$DATA/$f")"
    done
    echo "- object GETs during all restores: $RESTORE_GETS (each cold restore fetches every object once; warm ones none)"
    echo "- buildfs output of the last save: \`$(grep "^imported .*change-$ROUNDS" "$LOG" | tail -1)\`"
    echo "- transfers of the last save: \`$(grep -A1 "^imported .*change-$ROUNDS" "$LOG" | tail -1 | sed 's/^ *//')\`"
} > "$RESULTS"
log "wrote $RESULTS"
cat "$RESULTS"
