#!/usr/bin/env python3
"""Writes snapshot K of the synthetic tree for bench/gc-fsck.sh.

    gc-fsck-gen.py DIR K [--files N] [--dirs D] [--change PERCENT]

The tree is N small files (default 5,000) in D leaf directories (default
250), grouped 25 leaf directories per top directory: DIR/tNN/dNNN/fNNNN.
Snapshot 0 creates every file. Snapshot K > 0 rewrites PERCENT (default 80)
of the files in place (same inode, new size, content and mtime) and leaves
the rest untouched: the files kept are a different window for every K
(a sliding window of 100 - PERCENT percent of the file indexes), so every
snapshot shares the rest with its predecessor and objects still accumulate.

Every file is 1-4 KiB of source-like text (lines from a fixed pool with
random numbers in them, so it compresses roughly like code, about 3x), and
starts with a line naming the snapshot and the file index, so no two file
versions are identical: each is one new chunk (files < 16 KiB are one chunk).
Deterministic for given arguments. Prints how many files it wrote.
"""

import argparse
import os
import random
import sys

DIRS_PER_TOP = 25

WORDS = ("static const int char void return struct unsigned long size_t if else for while "
         "buffer length offset block chunk index tree pack store snapshot hash digest read "
         "write open close alloc free count limit value result error state node entry next "
         "prev first last begin end data bytes flags mode owner group mtime inode parent").split()


def line_pool(rng: random.Random, n: int) -> list:
    pool = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(3, 9))
        pool.append("    " + " ".join(words) + " = %08x;\n")
    return pool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("k", type=int)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--dirs", type=int, default=250)
    parser.add_argument("--change", type=int, default=80)
    args = parser.parse_args()
    if args.files < 1 or args.dirs < 1 or not 0 < args.change <= 100:
        parser.error("--files and --dirs must be positive, --change in 1..100")

    pool = line_pool(random.Random(12345), 4096)
    rng = random.Random(args.k * 7919 + 17)
    n = args.files
    keep = n * (100 - args.change) // 100
    # Files [start, start + keep) (mod n) stay as they are in snapshot K.
    start = (args.k * keep) % n if keep else 0

    written = 0
    for i in range(n):
        if args.k > 0 and keep and (i - start) % n < keep:
            continue
        leaf = i % args.dirs
        path = os.path.join(args.dir, "t%02d" % (leaf // DIRS_PER_TOP), "d%03d" % leaf, "f%05d" % i)
        if args.k == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        size = rng.randint(1024, 4096)
        parts = ["// snapshot %d file %d\n" % (args.k, i)]
        length = len(parts[0])
        while length < size:
            line = rng.choice(pool) % rng.getrandbits(32)
            parts.append(line)
            length += len(line)
        data = "".join(parts).encode()[:size]
        with open(path, "wb") as f:
            f.write(data)
        written += 1
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
