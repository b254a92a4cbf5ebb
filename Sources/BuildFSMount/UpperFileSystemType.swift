import CLinuxCalls

/// What the daemon needs to know about the file system the upper directory
/// lives on.
enum UpperFileSystemType {
    /// statfs f_type values of local file systems whose close(2) never
    /// reports anything (they have no ->flush): ext2/3/4, xfs, btrfs, tmpfs,
    /// f2fs, zfs. On them a FUSE FLUSH at every close of a written file
    /// would be a round trip that can only answer "ok" (writes went through
    /// at once: no writeback cache), so opens say `noflush`. On anything
    /// else (NFS, CIFS, another FUSE file system) close() may report a
    /// deferred write error, and the kernel's FLUSH passes it on.
    private static let closeIsSilent: Set<Int> = [
        0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0xF2F5_2010, 0x2FC1_2FC1,
    ]

    /// Whether closing a file on the file system holding `fd` cannot fail.
    static func closeReportsNothing(on fd: Int32) -> Bool {
        closeIsSilent.contains(buildfs_file_system_magic(fd))
    }
}
