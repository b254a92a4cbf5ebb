#!/usr/bin/env bash
# Which FUSE requests a command costs, and how long each kind waited for its
# answer: per opcode, from the kernel's tracepoints (bench_fuse_requests in
# lib.sh), over /dev/fuse or io_uring alike. A tool for finding where a
# workload's time goes on a mount, not a benchmark: it writes no report.
#
#   bench/fuse-requests.sh COMMAND...
#   e.g. bench/fuse-requests.sh tar -cf /dev/zero -C /work .
#
# Needs root (tracefs). Counts every FUSE mount's requests, so keep others
# idle meanwhile.
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
(( $# )) || { echo "usage: bench/fuse-requests.sh COMMAND..." >&2; exit 2; }
bench_fuse_requests "$@"
