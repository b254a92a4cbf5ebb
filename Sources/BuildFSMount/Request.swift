import CFuse3
import Glibc

/// One request from the kernel and the way to answer it. Every operation of
/// PassthroughFileSystem answers through this, exactly once (FORGET never),
/// in the daemon's own terms: which loop read the request stays here.
struct Request {
    private let req: fuse_req_t

    init(_ req: fuse_req_t) { self.req = req }

    /// Who asks: the calling process's fsuid, fsgid and pid.
    var caller: (uid: uid_t, gid: gid_t, pid: pid_t) {
        guard let context = fuse_req_ctx(req)?.pointee else { return (0, 0, 0) }
        return (context.uid, context.gid, context.pid)
    }

    /// The caller's supplementary groups (read from /proc: costly, so only
    /// asked for when a first try was refused).
    func callerGroups() -> [gid_t] {
        var groups = [gid_t](repeating: 0, count: 256)
        let count = fuse_req_getgroups(req, Int32(groups.count), &groups)
        return count > 0 ? Array(groups[..<min(Int(count), groups.count)]) : []
    }

    func reply(error code: Int32) { fuse_reply_err(req, code) }

    func replySuccess() { fuse_reply_err(req, 0) }

    func reply(entry: Entry) {
        var param = entry.param
        fuse_reply_entry(req, &param)
    }

    func reply(attributes: stat, timeout: Double) {
        var attributes = attributes
        fuse_reply_attr(req, &attributes, timeout)
    }

    func reply(open: OpenFile) {
        var info = open.info
        fuse_reply_open(req, &info)
    }

    func reply(created entry: Entry, open: OpenFile) {
        var param = entry.param, info = open.info
        fuse_reply_create(req, &param, &info)
    }

    func reply(written count: Int) { fuse_reply_write(req, count) }

    func reply(bytes: UnsafeRawBufferPointer) { fuse_reply_buf(req, bytes.baseAddress, bytes.count) }

    /// The pieces' bytes, one after the other (nothing copied here).
    func reply(pieces: [iovec]) { fuse_reply_iov(req, pieces, Int32(pieces.count)) }

    /// `size` bytes of `fd` from `offset` (fewer at its end), spliced from
    /// the file into the reply where the kernel allows it. A failed read
    /// is answered with its error here.
    func reply(dataOf fd: Int32, offset: off_t, size: Int) { _ = buildfs_reply_fd_data(req, fd, offset, size) }

    func reply(fileSystem info: statvfs) {
        var info = info
        fuse_reply_statfs(req, &info)
    }

    /// The size an xattr value or list would need (asked with size 0).
    func reply(attributeSize size: Int) { fuse_reply_xattr(req, size) }
}

/// A name the kernel may cache, with its inode's attributes; number 0 is a
/// negative entry (the name is known to be absent).
struct Entry {
    var number: UInt64
    var attributes: stat
    var timeout: Double

    fileprivate var param: fuse_entry_param {
        var param = fuse_entry_param()
        param.ino = fuse_ino_t(number)
        param.attr = attributes
        param.attr_timeout = number == 0 ? 0 : timeout
        param.entry_timeout = timeout
        return param
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

    fileprivate var info: fuse_file_info {
        var info = fuse_file_info()
        info.fh = handle
        info.keep_cache = keepCache ? 1 : 0
        info.direct_io = directIO ? 1 : 0
        info.noflush = noFlush ? 1 : 0
        info.cache_readdir = cacheListing ? 1 : 0
        return info
    }
}

/// The records of a READDIR or READDIRPLUS reply, packed as the kernel
/// reads them, up to the size it asked for.
struct DirectoryListing: ~Copyable {
    private var buffer: [CChar]
    private(set) var used = 0

    init(capacity: Int) { buffer = [CChar](repeating: 0, count: capacity) }

    /// Adds a name with its inode number and type (S_IFMT >> 12); false if
    /// it did not fit (then nothing was added).
    mutating func add(_ name: UnsafePointer<CChar>, inode: UInt64, type: UInt8, nextOffset: Int) -> Bool {
        var st = stat()
        st.st_ino = ino_t(inode)
        st.st_mode = mode_t(type) << 12
        let room = buffer.count - used
        let added = buffer.withUnsafeMutableBufferPointer { out in
            fuse_add_direntry(nil, out.baseAddress! + used, room, name, &st, off_t(nextOffset))
        }
        guard added <= room else { return false }
        used += added
        return true
    }

    /// Adds a name with its entry (READDIRPLUS); false if it did not fit.
    mutating func add(_ name: UnsafePointer<CChar>, entry: Entry, nextOffset: Int) -> Bool {
        var param = entry.param
        let room = buffer.count - used
        let added = buffer.withUnsafeMutableBufferPointer { out in
            fuse_add_direntry_plus(nil, out.baseAddress! + used, room, name, &param, off_t(nextOffset))
        }
        guard added <= room else { return false }
        used += added
        return true
    }

    func send(to request: Request) {
        buffer.withUnsafeBytes { request.reply(bytes: UnsafeRawBufferPointer(rebasing: $0[..<used])) }
    }
}
