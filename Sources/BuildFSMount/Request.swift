import BuildFSCore
import CFuseKernel
import Glibc

/// One request from the kernel and the way to answer it. Every operation of
/// PassthroughFileSystem answers through this, exactly once (FORGET never),
/// in the daemon's own terms; the wire format is KernelReplies', the
/// transport the sink's (/dev/fuse or an io_uring entry).
struct Request {
    /// Also where a PageCacheFiller sends its notifications from.
    let sink: any ReplySink
    private let unique: UInt64
    /// Who asks: the calling process's fsuid, fsgid and pid.
    let caller: (uid: uid_t, gid: gid_t, pid: pid_t)

    init(_ request: KernelRequest, replyingTo sink: any ReplySink) {
        self.sink = sink
        unique = request.unique
        caller = (request.uid, request.gid, request.pid)
    }

    /// The caller's supplementary groups, from its thread's /proc status
    /// (costly: asked for only when a first try was refused). Empty when
    /// the caller is gone or not visible from here.
    func callerGroups() -> [gid_t] {
        guard caller.pid > 0,
              let groups = ProcFile.statusField("Groups", pid: "\(caller.pid)/task/\(caller.pid)") else { return [] }
        return groups.split(separator: " ").compactMap { gid_t($0) }
    }

    /// Whether the caller holds `capability` (see Capabilities) in its
    /// effective set (read from /proc: for rare cases only).
    func callerHas(capability: Int) -> Bool {
        caller.pid > 0 && Capabilities.held(capability, by: "\(caller.pid)")
    }

    func reply(error code: Int32) { sink.reply(unique: unique, error: code) }

    func replySuccess() { sink.reply(unique: unique, error: 0) }

    func reply(entry: Entry) { sink.reply(unique: unique, entry.kernelEntry) }

    func reply(attributes: stat, timeout: Double) {
        sink.reply(unique: unique, buildfs_fuse_attr_out(attributes: attributes, timeout: timeout))
    }

    func reply(open: OpenFile) { sink.reply(unique: unique, open.kernelOpen) }

    func reply(created entry: Entry, open: OpenFile) { sink.reply(unique: unique, entry.kernelEntry, open.kernelOpen) }

    func reply(written count: Int) { sink.reply(unique: unique, buildfs_fuse_write_out(written: count)) }

    func reply(bytes: UnsafeRawBufferPointer) { sink.reply(unique: unique, bytes: bytes) }

    /// The pieces' bytes, one after the other (nothing copied here).
    func reply(pieces: [UnsafeRawBufferPointer]) { sink.reply(unique: unique, pieces: pieces) }

    /// `size` bytes of `fd` from `offset` (fewer at its end): spliced from
    /// the file into the reply over /dev/fuse, read into the entry over
    /// io_uring. A failed read is answered with its error.
    func reply(dataOf fd: Int32, offset: off_t, size: Int) {
        sink.replyData(unique: unique, fd: fd, offset: Int64(offset), size: size)
    }

    func reply(fileSystem info: statvfs) { sink.reply(unique: unique, buildfs_fuse_statfs_out(info)) }

    /// Not a reply: the kernel's cached attributes of inode `number` are
    /// stale (changed by the daemon on its own, see dropSetID).
    func invalidateAttributes(of number: UInt64) { sink.invalidateAttributes(of: number) }

    /// Not a reply: `pieces` become the cached pages of inode `number`
    /// from offset 0; false if the kernel refused them.
    func storeInPageCache(of number: UInt64, pieces: [UnsafeRawBufferPointer]) -> Bool {
        sink.storeInPageCache(of: number, pieces: pieces) == 0
    }

    /// The size an xattr value or list would need (asked with size 0).
    func reply(attributeSize size: Int) { sink.reply(unique: unique, buildfs_fuse_getxattr_out(needed: size)) }
}

/// A name the kernel may cache, with its inode's attributes; number 0 is a
/// negative entry (the name is known to be absent).
struct Entry {
    var number: UInt64
    var attributes: stat
    var timeout: Double

    fileprivate var kernelEntry: buildfs_fuse_entry_out {
        buildfs_fuse_entry_out(node: number, attributes: attributes, entryTimeout: timeout,
                               attributeTimeout: number == 0 ? 0 : timeout)
    }
}

/// What the kernel gets back for an open file or directory.
struct OpenFile {
    var handle: UInt64 = 0
    /// Pages stay valid across opens.
    var keepCache = false
    /// Reads and writes bypass the page cache.
    var directIO = false
    /// close() sends no FLUSH.
    var noFlush = false
    /// A directory's listing may be cached.
    var cacheListing = false
    /// Reads, writes and mmap go to this backing file, not to the daemon
    /// (PassthroughFiles); the kernel then refuses keepCache and directIO.
    var backingID: Int32?

    fileprivate var kernelOpen: buildfs_fuse_open_out {
        var flags: UInt32 = 0
        if let backingID {
            flags = BUILDFS_FOPEN_PASSTHROUGH | (noFlush ? BUILDFS_FOPEN_NOFLUSH : 0)
            return buildfs_fuse_open_out(handle: handle, flags: flags, backingID: backingID)
        }
        if keepCache { flags |= BUILDFS_FOPEN_KEEP_CACHE }
        if directIO { flags |= BUILDFS_FOPEN_DIRECT_IO }
        if noFlush { flags |= BUILDFS_FOPEN_NOFLUSH }
        if cacheListing { flags |= BUILDFS_FOPEN_CACHE_DIR }
        return buildfs_fuse_open_out(handle: handle, flags: flags)
    }
}

/// The records of a READDIR or READDIRPLUS reply, up to the size the
/// kernel asked for (packed by DirectoryEntries).
struct DirectoryListing: ~Copyable {
    private let storage: UnsafeMutableRawBufferPointer
    private var entries: DirectoryEntries

    init(capacity: Int) {
        storage = .allocate(byteCount: capacity, alignment: 8)
        entries = DirectoryEntries(into: storage)
    }

    deinit { storage.deallocate() }

    var used: Int { entries.used }

    /// Adds a name with its inode number and type (S_IFMT >> 12); false if
    /// it did not fit (then nothing was added).
    mutating func add(_ name: UnsafePointer<CChar>, inode: UInt64, type: UInt8, nextOffset: Int) -> Bool {
        entries.add(name: UnsafeRawBufferPointer(start: name, count: strlen(name)), inode: inode,
                    mode: mode_t(type) << 12, nextOffset: UInt64(bitPattern: Int64(nextOffset)))
    }

    /// Adds a name with its entry (READDIRPLUS); false if it did not fit.
    mutating func add(_ name: UnsafePointer<CChar>, entry: Entry, nextOffset: Int) -> Bool {
        entries.addPlus(name: UnsafeRawBufferPointer(start: name, count: strlen(name)), entry: entry.kernelEntry,
                        nextOffset: UInt64(bitPattern: Int64(nextOffset)))
    }

    func send(to request: Request) { request.reply(bytes: entries.bytes) }
}

/// What a SETATTR changes: the kernel's FATTR_* bits.
struct AttributeChanges: OptionSet {
    let rawValue: UInt32

    static let mode = Self(rawValue: BUILDFS_FATTR_MODE)
    static let uid = Self(rawValue: BUILDFS_FATTR_UID)
    static let gid = Self(rawValue: BUILDFS_FATTR_GID)
    static let size = Self(rawValue: BUILDFS_FATTR_SIZE)
    static let atime = Self(rawValue: BUILDFS_FATTR_ATIME)
    static let mtime = Self(rawValue: BUILDFS_FATTR_MTIME)
    static let atimeNow = Self(rawValue: BUILDFS_FATTR_ATIME_NOW)
    static let mtimeNow = Self(rawValue: BUILDFS_FATTR_MTIME_NOW)
    /// Clear setuid/setgid (HANDLE_KILLPRIV_V2: a truncate by a caller
    /// without CAP_FSETID).
    static let killSetID = Self(rawValue: BUILDFS_FATTR_KILL_SUIDGID)
}
