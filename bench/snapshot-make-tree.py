#!/usr/bin/env python3
"""Generates the synthetic build tree for bench/snapshot-mount.sh.

    bench/snapshot-make-tree.py OUTDIR [--scale S]

At scale 1 the tree holds about 1.2 GB in about 52k files, shaped like a CI
build directory, with real content so that it compresses like one:

  src/mNN/...   40k small text files: headers, Perl and Python sources copied
                from /usr/include, /usr/share/perl and /usr/lib/python3*
                (files of at most 64 KiB), each copy prefixed with a line
                naming its copy, so no two files are identical
  obj/dNNN/*.o  12k object-file-sized pieces (2-128 KiB, log-uniform) cut
                from real ELF shared libraries and programs
  bin/*         the rest of the bytes: copies of the large (2-48 MiB) ELF
                binaries on this machine (cc1, lto1, ...) with 8 bytes changed in
                every 64 KiB, so copies do not dedup against each other or
                the originals (a rebuilt binary differs all over too)

Scale S multiplies the file counts and the byte target (--scale 0.1: the
10x smaller tree). Generation is deterministic for a given machine (seeded
random choices over sorted file lists). OUTDIR must not exist. A summary
(files, bytes, the deepest source file) is written to OUTDIR.json; the
calling script keeps the tree and reuses it while that summary matches.
"""

import argparse
import json
import os
import random
import stat
import sys

GENERATOR_VERSION = 2
TEXT_ROOTS = ["/usr/include", "/usr/share/perl"]
PYTHON_GLOB_PARENT = "/usr/lib"
ELF_ROOTS = ["/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib/gcc"]
TEXT_MAX = 64 << 10
BIG_MIN = 2 << 20
BIG_MAX = 48 << 20
STRIDE = 64 << 10


def regular_files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
                out.append((path, st))
    return out


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def text_pool():
    roots = list(TEXT_ROOTS)
    roots += sorted(
        os.path.join(PYTHON_GLOB_PARENT, d)
        for d in os.listdir(PYTHON_GLOB_PARENT)
        if d.startswith("python3")
    )
    pool, seen = [], set()
    for root in roots:
        for path, st in regular_files(root):
            if (st.st_dev, st.st_ino) in seen or not 0 < st.st_size <= TEXT_MAX:
                continue
            if root.startswith(PYTHON_GLOB_PARENT) and not path.endswith(".py"):
                continue
            seen.add((st.st_dev, st.st_ino))
            pool.append((root, path))
    return pool


def elf_pools():
    slices, big, seen, sizes = [], [], set(), set()
    for root in ELF_ROOTS:
        for path, st in regular_files(root):
            if (st.st_dev, st.st_ino) in seen or st.st_size < 256 << 10:
                continue
            seen.add((st.st_dev, st.st_ino))
            if not is_elf(path):
                continue
            slices.append((path, st.st_size))
            # Same-size files are usually the same build (mesa's *_dri.so).
            if BIG_MIN <= st.st_size <= BIG_MAX and st.st_size not in sizes:
                sizes.add(st.st_size)
                big.append((path, st.st_size))
    return slices, big


def write_file(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    out = os.path.abspath(args.outdir)
    if os.path.exists(out):
        sys.exit(f"snapshot-make-tree.py: {out} exists")
    scale = args.scale
    n_text = max(1, round(40000 * scale))
    n_obj = max(1, round(12000 * scale))
    total_target = int(1.2e9 * scale)
    rng = random.Random(20240601)

    texts = text_pool()
    slice_pool, big_pool = elf_pools()
    rng.shuffle(texts)
    rng.shuffle(big_pool)
    if not texts or not slice_pool or not big_pool:
        sys.exit("snapshot-make-tree.py: found no source files or no ELF binaries to copy")

    os.makedirs(out)
    files = total = 0
    deepest = ("", -1)

    # Sources: the pool in order, copy after copy.
    for i in range(n_text):
        copy, j = divmod(i, len(texts))
        root, src = texts[j]
        rel = os.path.join("src", f"m{copy:02d}", os.path.basename(root), os.path.relpath(src, root))
        with open(src, "rb") as f:
            data = f.read()
        header = f"/* buildfs bench copy {copy} of {src} */\n".encode()
        write_file(os.path.join(out, rel), header + data)
        files += 1
        total += len(header) + len(data)
        depth = rel.count("/")
        if depth > deepest[1]:
            deepest = (rel, depth)

    # Object files: pieces of ELF files.
    handles = {}
    for i in range(n_obj):
        path, size = slice_pool[rng.randrange(len(slice_pool))]
        length = min(size, int(2 ** rng.uniform(11, 17)))
        offset = rng.randrange(0, size - length + 1)
        f = handles.get(path)
        if f is None:
            f = handles[path] = open(path, "rb")
        f.seek(offset)
        data = f.read(length)
        rel = os.path.join("obj", f"d{i // 100:03d}", f"f{i:05d}.o")
        write_file(os.path.join(out, rel), data)
        files += 1
        total += len(data)
    for f in handles.values():
        f.close()

    # Binaries: large ELF files, 8 bytes changed in every 64 KiB, until the
    # byte target is reached (at least one).
    k = 0
    while total < total_target or k == 0:
        path, size = big_pool[k % len(big_pool)]
        with open(path, "rb") as f:
            data = bytearray(f.read())
        stamp = (k + 1).to_bytes(8, "little")
        for start in range(0, len(data), STRIDE):
            at = start + rng.randrange(0, max(1, min(STRIDE, len(data) - start) - 8))
            data[at:at + 8] = stamp
        rel = os.path.join("bin", f"{os.path.basename(path)}.{k}")
        write_file(os.path.join(out, rel), bytes(data), 0o755)
        files += 1
        total += len(data)
        k += 1

    summary = {
        "generator_version": GENERATOR_VERSION,
        "scale": scale,
        "files": files,
        "file_bytes": total,
        "text_files": n_text,
        "object_files": n_obj,
        "binaries": k,
        "deep_file": deepest[0],
    }
    with open(out + ".json", "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
