#!/usr/bin/env bash
# Builds a realistic CI build tree for the import/export benchmark, or applies
# a small deterministic source change to one and rebuilds it.
#
#   bench/make-build-tree.sh OUTDIR              create the tree (~300 MB)
#   bench/make-build-tree.sh --change N OUTDIR   apply small change N, re-run make
#
# The tree is:
#   OUTDIR/project/    the zstd C library (from the python-zstd sdist on PyPI),
#                      compiled with make: build/**/*.o, *.d, libzstd.a,
#                      libzstd.so.1 and a small program linked against it
#   OUTDIR/toolchain/  a copy of /usr/include, the gcc lib dir (cc1, cc1plus,
#                      crt files, static libs) and the compiler/binutils
#                      binaries: the kind of bulky, rarely-changing content a
#                      CI cache holds next to the project's own outputs
#
# Creating is idempotent-ish: an OUTDIR that this script completed and that has
# had no change applied is reused as is; anything else is rebuilt from scratch.
# The sdist is downloaded once and cached under bench/work/cache (git-ignored);
# ccache (when installed) makes the rebuild of a fresh tree take seconds.
#
# Environment:
#   ZSTD_SDIST_SPEC  pip requirement for the sdist (default zstd==1.5.7.2,
#                    pinned so that every run benchmarks the same tree)
#   JOBS             make -j value (default: nproc)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"   # bench_fetch_zstd_sdist, ZSTD_SDIST_SPEC
JOBS=${JOBS:-$(nproc)}
STATE_FILE_NAME=.bench-tree-state   # lives in OUTDIR, records "changes=N"

die() { echo "make-build-tree.sh: $*" >&2; exit 1; }

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Extracts the sdist's zstd/lib into PROJECT/lib. The sdist ships the C
# library sources but no Makefile for them, so we bring our own.
unpack_library_sources() {
    local tarball=$1 project=$2 tmp libdir
    tmp=$(mktemp -d)
    tar -xzf "$tarball" -C "$tmp"
    libdir=$(find "$tmp" -type d -path '*/zstd/lib' | head -n 1)
    [[ -n $libdir && -f $libdir/zstd.h ]] || die "no zstd/lib with zstd.h in $tarball"
    mkdir -p "$project"
    cp -a "$libdir" "$project/lib"
    rm -rf "$tmp"
}

write_makefile() {
    local project=$1
    # Every lib .c (and the amd64 Huffman decoder .S) becomes an .o with an
    # .d dependency file; the objects go into a static and a shared library,
    # and a small program is linked statically against the library, so a
    # source change ripples into .o, .d, .a, .so and an executable.
    cat >"$project/Makefile" <<'MAKEFILE'
CC       ?= gcc
CFLAGS   ?= -O2 -g
CPPFLAGS += -Ilib -Ilib/common -DXXH_NAMESPACE=ZSTD_ -DZSTD_MULTITHREAD \
            -DZSTD_LEGACY_SUPPORT=5
DEPFLAGS  = -MMD -MP

SRCS := $(sort $(wildcard lib/*/*.c))
ASMS := $(sort $(wildcard lib/*/*.S))
OBJS := $(patsubst lib/%.c,build/%.o,$(SRCS)) $(patsubst lib/%.S,build/%.o,$(ASMS))

all: build/libzstd.a build/libzstd.so.1 build/roundtrip

build/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -pthread $(DEPFLAGS) -c $< -o $@

build/%.o: lib/%.S
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -fPIC $(DEPFLAGS) -c $< -o $@

build/libzstd.a: $(OBJS)
	rm -f $@
	ar rcs $@ $^

build/libzstd.so.1: $(OBJS)
	$(CC) -shared -pthread -Wl,-soname,libzstd.so.1 -o $@ $^

build/roundtrip: tools/roundtrip.c build/libzstd.a
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -o $@ $< build/libzstd.a -pthread

clean:
	rm -rf build

-include $(OBJS:.o=.d) build/roundtrip.d
.PHONY: all clean
MAKEFILE
}

write_roundtrip_program() {
    local project=$1
    mkdir -p "$project/tools"
    cat >"$project/tools/roundtrip.c" <<'CSRC'
/* Compresses and decompresses stdin with libzstd and checks the round trip:
 * a tiny program so the build tree holds a linked executable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zstd.h"

int main(void) {
    size_t cap = 1 << 20, len = 0, n;
    char *in = malloc(cap);
    while (in && (n = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) in = realloc(in, cap *= 2);
    }
    if (!in) return 2;
    size_t bound = ZSTD_compressBound(len);
    char *comp = malloc(bound), *back = malloc(len + 1);
    size_t clen = ZSTD_compress(comp, bound, in, len, 3);
    if (ZSTD_isError(clen)) return 3;
    size_t dlen = ZSTD_decompress(back, len + 1, comp, clen);
    if (ZSTD_isError(dlen) || dlen != len || memcmp(in, back, len) != 0) return 4;
    printf("%zu -> %zu bytes, round trip ok\n", len, clen);
    return 0;
}
CSRC
}

run_make() {
    local project=$1 cc=gcc
    # ccache turns the rebuild of a freshly created tree into cache hits;
    # changed sources still miss, as they would in CI.
    if command -v ccache >/dev/null; then cc="ccache gcc"; fi
    make -C "$project" -j"$JOBS" CC="$cc" >"$project/build.log" 2>&1 \
        || { tail -n 30 "$project/build.log" >&2; die "make failed in $project"; }
}

# Copies the bulky toolchain content: headers, gcc's lib dir and binaries.
copy_toolchain() {
    local dest=$1 triplet version
    triplet=$(gcc -dumpmachine)
    version=$(gcc -dumpversion | cut -d. -f1)
    mkdir -p "$dest/usr/lib/gcc/$triplet" "$dest/usr/bin"
    cp -a /usr/include "$dest/usr/"
    cp -a "/usr/lib/gcc/$triplet/$version" "$dest/usr/lib/gcc/$triplet/"
    # cp -a keeps symlinks (gcc-12 -> x86_64-linux-gnu-gcc-12) as symlinks.
    cp -a /usr/bin/"$triplet"-* "$dest/usr/bin/"
    local name
    for name in gcc g++ cpp gcc-ar gcc-nm gcc-ranlib gcov; do
        [[ -e /usr/bin/$name-$version ]] && cp -a "/usr/bin/$name-$version" "$dest/usr/bin/"
        [[ -e /usr/bin/$name ]] && cp -a "/usr/bin/$name" "$dest/usr/bin/"
    done
}

create_tree() {
    local outdir=$1 tarball
    if [[ -f $outdir/$STATE_FILE_NAME ]] && grep -qx 'changes=0' "$outdir/$STATE_FILE_NAME"; then
        echo "reusing unchanged build tree $outdir" >&2
        return
    fi
    rm -rf "$outdir"
    mkdir -p "$outdir"
    tarball=$(bench_fetch_zstd_sdist) || die "could not get the zstd sdist ($ZSTD_SDIST_SPEC)"
    unpack_library_sources "$tarball" "$outdir/project"
    write_makefile "$outdir/project"
    write_roundtrip_program "$outdir/project"
    run_make "$outdir/project"
    "$outdir/project/build/roundtrip" <"$outdir/project/lib/zstd.h" >/dev/null \
        || die "the freshly built roundtrip program failed"
    copy_toolchain "$outdir/toolchain"
    echo "changes=0" >"$outdir/$STATE_FILE_NAME"
    echo "created build tree $outdir ($(du -sh "$outdir" | cut -f1))" >&2
}

# Small change N: append one line to two library sources picked by N, then
# rebuild. The variable is marked `used` so -O2 cannot drop it: the .o files,
# both libraries and (if it pulls in a changed object) the program change.
apply_change() {
    local n=$1 outdir=$2 project=$2/project
    [[ $n =~ ^[0-9]+$ ]] || die "change number must be a non-negative integer: $n"
    [[ -f $outdir/$STATE_FILE_NAME ]] || die "$outdir is not a tree made by this script"
    local -a sources
    mapfile -t sources < <(cd "$project" && find lib -name '*.c' | LC_ALL=C sort)
    local count=${#sources[@]}
    local first=$(( (n * 7) % count )) second=$(( (n * 13 + 5) % count ))
    (( second != first )) || second=$(( (first + 1) % count ))
    local file
    for file in "${sources[$first]}" "${sources[$second]}"; do
        printf '__attribute__((used)) static int buildfs_bench_%d = %d;\n' "$n" "$n" \
            >>"$project/$file"
        echo "change $n: edited $file" >&2
    done
    run_make "$project"
    local changes
    changes=$(sed -n 's/^changes=//p' "$outdir/$STATE_FILE_NAME")
    echo "changes=$(( changes + 1 ))" >"$outdir/$STATE_FILE_NAME"
}

main() {
    case ${1:-} in
        --change)
            [[ $# -eq 3 ]] || usage
            apply_change "$2" "$3" ;;
        -h|--help|'') usage ;;
        -*) usage ;;
        *)
            [[ $# -eq 1 ]] || usage
            create_tree "$1" ;;
    esac
}

main "$@"
