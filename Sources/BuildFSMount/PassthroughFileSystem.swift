import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc

/// The file system the daemon serves: the upper directory, as it is, at the
/// mount point. Every FUSE request lands in one of the methods of this class
/// and its extensions (one file per group of operations); each method
/// replies to the request itself.
///
/// Kernel caching is turned up because the daemon is the only writer of the
/// upper directory while it is mounted (writing to the upper directory
/// behind the mount's back is not supported): attributes, names and
/// negative lookups are cached for `timeout`, file pages survive close
/// (`keep_cache`), and directory listings are cached (`cache_readdir`).
/// Writes go through to the upper file at once (no writeback cache: see
/// `negotiate`), so the upper directory is always what readers see.
///
/// State and locks, in the order they may be taken (a lock is only ever
/// taken while holding locks above it in this list, never below):
///
/// 1. the descriptor gate (DescriptorCache): every request holds it shared
///    for its whole run, eviction exclusive between requests;
/// 2. a directory handle's stream state (DirectoryHandle.state), during
///    readdir, which may look entries up (4, 5);
/// 3. an inode's layer state (Inode.withLayerState, one lock per inode):
///    held through an expansion or a copy-up of that inode, which call the
///    snapshot layer (5) but never another inode's layer state;
/// 4. the inode table (InodeTable.inodes): lookups counted and forgotten;
///    nothing is called under it but the map and `Inode.isEvictable`;
/// 5. leaves, which call nothing that locks: the snapshot layer's stub
///    notes, link index lock, tree and chunk caches (ByteBudgetCache), the
///    read trace's set, and the store's own locks (block cache, pack
///    catalog, SingleFlight).
///
/// Per inode without a lock: the O_PATH descriptor (atomic, see Inode) and
/// the lookup count (changed under 4 only).
public final class PassthroughFileSystem: Sendable {
    let table: InodeTable
    let upperPath: String
    /// Seconds the kernel may trust names and attributes without asking.
    let timeout: Double = 86_400
    /// Running as root, creations take the caller's uid/gid (fsuid).
    let switchesIdentity: Bool
    let daemonUID: uid_t
    let daemonGID: gid_t
    /// The snapshot under the upper directory, if the mount has one.
    let snapshot: SnapshotLayer?
    /// Whether closing an upper file never fails (see UpperFileSystemType).
    let upperCloseReportsNothing: Bool
    /// FUSE no-open mode: the kernel opens files without asking (see
    /// PassthroughFileSystem+Files). Only for a daemon that can reopen any
    /// file for writing, whatever its mode.
    let servesWithoutOpens: Bool

    public init(upper: String, snapshot: SnapshotLayer? = nil) throws {
        upperPath = upper
        self.snapshot = snapshot
        let fd = Glibc.open(upper, BUILDFS_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open upper directory", upper) }
        var st = stat()
        fstat(fd, &st)
        table = InodeTable(root: Inode(fd: fd, key: InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)),
                                       type: S_IFDIR, cache: nil),
                           cache: DescriptorCache(mountFD: Glibc.open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC)))
        upperCloseReportsNothing = UpperFileSystemType.closeReportsNothing(on: fd)
        daemonUID = geteuid()
        daemonGID = getegid()
        switchesIdentity = daemonUID == 0
        servesWithoutOpens = DaemonCapabilities.overridesFileModes
    }

    // MARK: replies

    /// Runs an operation, turning a thrown errno into the error reply.
    @inline(__always)
    func replying(_ req: fuse_req_t, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            replyError(req, error)
        }
    }

    /// The error reply for a thrown error: its errno, else EIO.
    func replyError(_ req: fuse_req_t, _ error: any Error) {
        fuse_reply_err(req, (error as? SystemCallError)?.code ?? EIO)
    }

    func entryParam(_ inode: Inode, _ st: stat) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = table.number(of: inode)
        entry.generation = 0
        entry.attr = presented(inode, st)
        entry.attr_timeout = timeout
        entry.entry_timeout = timeout
        return entry
    }

    func statOf(_ inode: Inode) throws -> stat {
        var st = stat()
        try sys("fstatat") { fstatat(inode.fd, "", &st, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
        return st
    }

    /// Finds `name` in `parent` and counts a kernel lookup of it.
    func lookupEntry(_ parent: Inode, _ name: UnsafePointer<CChar>) throws -> (Inode, stat) {
        let fd = try sys("openat") { openat(parent.fd, name, BUILDFS_O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        var st = stat()
        guard fstatat(fd, "", &st, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else {
            let error = SystemCallError("fstatat")
            close(fd)
            throw error
        }
        return (table.remember(fd: fd, stat: st), st)
    }

    // MARK: caller identity

    /// Runs `body` with this thread's fsuid/fsgid set to the caller's, so
    /// that files it creates belong to the caller. Supplementary groups are
    /// read (from /proc, costly) only when the first try is refused.
    func asCaller<R>(_ req: fuse_req_t, _ body: () throws -> R) throws -> R {
        guard switchesIdentity, let context = fuse_req_ctx(req)?.pointee,
              context.uid != daemonUID || context.gid != daemonGID else { return try body() }
        buildfs_setfsgid(context.gid)
        buildfs_setfsuid(context.uid)
        defer {
            buildfs_setfsuid(daemonUID)
            buildfs_setfsgid(daemonGID)
        }
        do {
            return try body()
        } catch let error as SystemCallError where error.code == EACCES {
            var groups = [gid_t](repeating: 0, count: 256)
            let count = fuse_req_getgroups(req, Int32(groups.count), &groups)
            guard count > 0 else { throw error }
            buildfs_setgroups(Int(min(count, Int32(groups.count))), groups)
            defer { buildfs_setgroups(0, nil) }
            return try body()
        }
    }

    /// The mode a new file or directory in `directory` gets: the caller's
    /// umask applies unless the directory has a default ACL, which then
    /// decides alone (the upper file system applies it at creation). The
    /// kernel leaves this to the daemon (FUSE_CAP_DONT_MASK).
    func creationMode(_ req: fuse_req_t, in directory: Inode, _ mode: mode_t) -> mode_t {
        guard let umask = fuse_req_ctx(req)?.pointee.umask, umask != 0 else { return mode }
        let defaultACL = CLinuxCalls.getxattr(directory.procPath, "system.posix_acl_default", nil, 0)
        return defaultACL > 0 ? mode : mode & ~umask
    }

    // MARK: lookup, forget, attributes

    func lookup(_ req: fuse_req_t, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>) {
        do {
            let directory = table.inode(parent)
            try ensureExpanded(directory)
            if isInternal(directory, name) { throw SystemCallError("lookup", code: ENOENT) }
            let (inode, st) = try lookupEntry(directory, name)
            var entry = entryParam(inode, st)
            fuse_reply_entry(req, &entry)
        } catch let error as SystemCallError where error.code == ENOENT {
            // A negative entry: the kernel remembers the name is absent, which
            // spares the include-path probes of every compile a round trip.
            var entry = fuse_entry_param()
            entry.ino = 0
            entry.entry_timeout = timeout
            fuse_reply_entry(req, &entry)
        } catch let error as SystemCallError {
            fuse_reply_err(req, error.code)
        } catch {
            fuse_reply_err(req, EIO)
        }
    }

    func forget(_ ino: fuse_ino_t, _ count: UInt64) {
        table.forget(ino, count: count)
    }

    func getattr(_ req: fuse_req_t, _ ino: fuse_ino_t) {
        replying(req) {
            let inode = table.inode(ino)
            var st = presented(inode, try statOf(inode))
            fuse_reply_attr(req, &st, timeout)
        }
    }

    func setattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ attr: stat, _ toSet: Int32,
                 _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        replying(req) {
            let inode = table.inode(ino)
            // A truncate changes content: a stub gets its bytes first.
            if toSet & FUSE_SET_ATTR_SIZE != 0 { try copyUpIfStub(inode) }
            let handle = fi.flatMap(RegularFileHandle.descriptor)
            if toSet & FUSE_SET_ATTR_MODE != 0 {
                if let handle { try sys("fchmod") { fchmod(handle, attr.st_mode) } } else { try sys("chmod") { chmod(inode.procPath, attr.st_mode) } }
            }
            if toSet & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0 {
                let uid = toSet & FUSE_SET_ATTR_UID != 0 ? attr.st_uid : uid_t.max
                let gid = toSet & FUSE_SET_ATTR_GID != 0 ? attr.st_gid : gid_t.max
                try sys("fchownat") { fchownat(inode.fd, "", uid, gid, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
            }
            if toSet & FUSE_SET_ATTR_SIZE != 0 {
                if let handle { try sys("ftruncate") { ftruncate(handle, attr.st_size) } } else { try sys("truncate") { truncate(inode.procPath, attr.st_size) } }
            }
            if toSet & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME) != 0 {
                var times = [timespec(tv_sec: 0, tv_nsec: BUILDFS_UTIME_OMIT), timespec(tv_sec: 0, tv_nsec: BUILDFS_UTIME_OMIT)]
                if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
                    times[0].tv_nsec = BUILDFS_UTIME_NOW
                } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
                    times[0] = attr.st_atim
                }
                if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
                    times[1].tv_nsec = BUILDFS_UTIME_NOW
                } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
                    times[1] = attr.st_mtim
                }
                if let handle {
                    try sys("futimens") { futimens(handle, &times) }
                } else {
                    try sys("utimensat") { utimensat(inode.fd, "", &times, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
                }
            }
            var st = presented(inode, try statOf(inode))
            fuse_reply_attr(req, &st, timeout)
        }
    }

    func readlink(_ req: fuse_req_t, _ ino: fuse_ino_t) {
        replying(req) {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = try sys("readlinkat") { readlinkat(table.inode(ino).fd, "", &buffer, buffer.count - 1) }
            buffer[n] = 0
            fuse_reply_readlink(req, buffer)
        }
    }

    func statfs(_ req: fuse_req_t, _ ino: fuse_ino_t) {
        replying(req) {
            var info = statvfs()
            try sys("fstatvfs") { fstatvfs(table.inode(ino).fd, &info) }
            fuse_reply_statfs(req, &info)
        }
    }
}
