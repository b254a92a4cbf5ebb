#!/usr/bin/env python3
"""Creates N small files under DIR (for bench/mount.sh's many-files workload).

    make-many-files.py DIR N

Layout: DIR/dNNN/sNN/fNNN, 100 files per leaf directory, 100 leaf
directories per top directory (200k files = 20 top, 2,000 leaf directories).
Each file gets 100 bytes and is closed before the next one is opened, so a
daemon that keeps a descriptor per inode (not per open file) is what runs out
of descriptors. Prints the number of files created.
"""
import os
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root, total = sys.argv[1], int(sys.argv[2])
    payload = b"x" * 99 + b"\n"
    per_leaf, leaves_per_top = 100, 100
    made = 0
    leaf = 0
    while made < total:
        top, sub = divmod(leaf, leaves_per_top)
        leaf_dir = os.path.join(root, "d%03d" % top, "s%02d" % sub)
        os.makedirs(leaf_dir, exist_ok=True)
        for i in range(min(per_leaf, total - made)):
            fd = os.open(os.path.join(leaf_dir, "f%03d" % i),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)
            made += 1
        leaf += 1
    print(made)
    return 0


if __name__ == "__main__":
    sys.exit(main())
