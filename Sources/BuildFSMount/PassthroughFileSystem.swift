import BuildFSCore
import CFuseKernel
import CLinuxCalls
import Glibc

/// The file system the daemon serves: the upper directory, as it is, at the
/// mount point. Every FUSE request lands in one of the methods of this class,
/// grouped by what they serve: names (+Namespace: lookup, create, link,
/// rename, remove), file contents (+Files), directory listings
/// (+Directories), attributes and xattrs (+Attributes); each method replies
/// to the request itself. Over a snapshot, `snapshot` (SnapshotSide) is
/// asked first: it expands directories, copies up stubs, serves stub reads
/// and hides the layout.
///
/// Kernel caching is turned up because the daemon is the only writer of the
/// upper directory while it is mounted (writing to the upper directory
/// behind the mount's back is not supported): attributes, names and
/// negative lookups are cached for `timeout`, file pages survive close
/// (`keep_cache`), and directory listings are cached (`cache_readdir`).
/// Writes go through to the upper file at once (no writeback cache: see
/// `initTerms`), so the upper directory is always what readers see.
///
/// State and locks, in the order they may be taken (a lock is only ever
/// taken while holding locks above it in this list, never below):
///
/// 1. the descriptor gate (DescriptorCache): every request holds it shared
///    for its whole run, eviction exclusive between requests;
/// 2. a directory handle's stream state (DirectoryHandle.state), during
///    readdir, which may look entries up (5, 6);
/// 3. an inode's page-cache-fill lock (Inode.withPageCacheFill): held by a
///    fill of that stub and by its copy-up, which takes 4 inside it; a fill
///    holds it while the kernel may wait for a page a READ of the file
///    holds, so a stub's READ takes neither it nor the gate (see
///    PageCacheFiller);
/// 4. an inode's layer state (Inode.withLayerState, one lock per inode):
///    held through an expansion or a copy-up of that inode, which call the
///    snapshot layer (6) but never another inode's layer state;
/// 5. the inode table (InodeTable.inodes): lookups counted and forgotten;
///    nothing is called under it but the map and `Inode.isEvictable`;
/// 6. leaves, which call nothing that locks: the snapshot layer's stub
///    notes, link index lock, tree and chunk caches (ByteBudgetCache), the
///    read trace's set, and the store's own locks (block cache, pack
///    catalog, SingleFlight).
///
/// Per inode without a lock: the O_PATH descriptor (atomic, see Inode) and
/// the lookup count (changed under 5 only). The PageCacheFiller's queue and
/// listing order are under its own lock, a leaf.
public final class PassthroughFileSystem: Sendable {
    let table: InodeTable
    let upperPath: String
    /// Seconds the kernel may trust names and attributes without asking.
    let timeout: Double = 86_400
    /// Running as root, creations take the caller's uid/gid (fsuid).
    let switchesIdentity: Bool
    let daemonUID: uid_t
    let daemonGID: gid_t
    /// The snapshot side, if the mount has a snapshot under it.
    let snapshot: SnapshotSide?
    /// Puts small stubs into the page cache as they are opened (snapshot
    /// mounts only).
    let filler: PageCacheFiller?
    /// Whether closing an upper file never fails (see UpperFileSystemType).
    let upperCloseReportsNothing: Bool
    /// FUSE no-open mode for files: the kernel opens them without asking
    /// (see PassthroughFileSystem+Files). Only for a daemon that can reopen
    /// any file for writing, whatever its mode, and not over a snapshot:
    /// there small stubs go into the page cache as they are opened, which is
    /// only safe when every open for writing comes here first
    /// (SnapshotSide.fillPageCache).
    let servesFilesWithoutOpens: Bool
    /// The same for directories (PassthroughFileSystem+Directories).
    let servesDirectoriesWithoutOpens: Bool

    public init(upper: String, snapshot layer: SnapshotLayer? = nil) throws {
        upperPath = upper
        let fd = Glibc.open(upper, BUILDFS_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open upper directory", upper) }
        var st = stat()
        fstat(fd, &st)
        let table = InodeTable(root: Inode(fd: fd, key: InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)),
                                           number: UInt64(BUILDFS_FUSE_ROOT_ID), type: S_IFDIR, cache: nil),
                               cache: DescriptorCache(mountFD: Glibc.open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC)))
        self.table = table
        let snapshot = layer.map { SnapshotSide(layer: $0, table: table, upperPath: upper) }
        self.snapshot = snapshot
        filler = snapshot.map { PageCacheFiller(side: $0, table: table) }
        upperCloseReportsNothing = UpperFileSystemType.closeReportsNothing(on: fd)
        daemonUID = geteuid()
        daemonGID = getegid()
        switchesIdentity = daemonUID == 0
        servesDirectoriesWithoutOpens = Capabilities.daemonOverridesFileModes
        servesFilesWithoutOpens = servesDirectoriesWithoutOpens && layer == nil
    }

    // MARK: replies

    /// Runs an operation, turning a thrown errno into the error reply.
    @inline(__always)
    func replying(_ request: Request, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            replyError(request, error)
        }
    }

    /// The error reply for a thrown error: its errno, else EIO.
    func replyError(_ request: Request, _ error: any Error) {
        request.reply(error: (error as? SystemCallError)?.code ?? EIO)
    }

    func entry(_ inode: Inode, _ st: stat) -> Entry {
        Entry(number: table.number(of: inode), attributes: presented(inode, st), timeout: timeout)
    }

    func statOf(_ inode: Inode) throws -> stat {
        var st = stat()
        try sys("fstatat") { fstatat(inode.fd, "", &st, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
        return st
    }

    /// The preferred I/O size a stat shows (st_blksize). stdio sizes its
    /// buffer by it (up to BUFSIZ, 8 KiB), and through FUSE every write()
    /// is a round trip (two when it starts inside a page the kernel has not
    /// cached, as most of them do): the upper file system's 4 KiB doubled
    /// the requests of `ar` and `ld` writing a library.
    static let preferredIOSize = 128 << 10

    /// Attributes as the user sees them: a preferred I/O size of a FUSE
    /// request's worth, and what the snapshot side hides.
    func presented(_ inode: Inode, _ st: stat) -> stat {
        var shown = snapshot?.presented(inode, st) ?? st
        shown.st_blksize = Self.preferredIOSize
        return shown
    }

    // MARK: caller identity

    /// Runs `body` with this thread's fsuid/fsgid set to the caller's, so
    /// that files it creates belong to the caller. Supplementary groups are
    /// read (from /proc, costly) only when the first try is refused.
    func asCaller<R>(_ request: Request, _ body: () throws -> R) throws -> R {
        let caller = request.caller
        guard switchesIdentity, caller.uid != daemonUID || caller.gid != daemonGID else { return try body() }
        buildfs_setfsgid(caller.gid)
        buildfs_setfsuid(caller.uid)
        defer {
            buildfs_setfsuid(daemonUID)
            buildfs_setfsgid(daemonGID)
        }
        do {
            return try body()
        } catch let error as SystemCallError where error.code == EACCES {
            let groups = request.callerGroups()
            guard !groups.isEmpty else { throw error }
            buildfs_setgroups(groups.count, groups)
            defer { buildfs_setgroups(0, nil) }
            return try body()
        }
    }

    /// The mode a new file or directory in `directory` gets: the caller's
    /// umask applies unless the directory has a default ACL, which then
    /// decides alone (the upper file system applies it at creation). The
    /// kernel leaves this to the daemon (FUSE_DONT_MASK).
    func creationMode(_ mode: mode_t, umask: mode_t, in directory: Inode) -> mode_t {
        guard umask != 0 else { return mode }
        let defaultACL = CLinuxCalls.getxattr(directory.procPath, "system.posix_acl_default", nil, 0)
        return defaultACL > 0 ? mode : mode & ~umask
    }

    // MARK: lookup, forget

    func lookup(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>) {
        do {
            let directory = try table.inode(parent)
            try snapshot?.ensureExpanded(directory)
            if snapshot?.isInternal(directory, name) == true { throw SystemCallError("lookup", code: ENOENT) }
            let (inode, st) = try table.lookUp(name, in: directory)
            request.reply(entry: entry(inode, st))
        } catch let error as SystemCallError where error.code == ENOENT {
            // A negative entry: the kernel remembers the name is absent, which
            // spares the include-path probes of every compile a round trip.
            request.reply(entry: Entry(number: 0, attributes: stat(), timeout: timeout))
        } catch {
            replyError(request, error)
        }
    }

    func forget(_ ino: UInt64, _ count: UInt64) {
        table.forget(ino, count: count)
    }
}
