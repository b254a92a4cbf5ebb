import CFuseKernel
import Glibc

/// The body of a READDIR or READDIRPLUS reply, packed into a buffer the
/// caller gives (as large as the request's size): fuse_dirent or
/// fuse_direntplus records, each followed by its name and zero-padded to
/// 8 bytes. As libfuse's fuse_add_direntry(_plus): a record that does not
/// fit is not added, and `add` says so (the directory continues at that
/// entry's offset in the next request).
struct DirectoryEntries {
    private let buffer: UnsafeMutableRawBufferPointer
    /// Bytes filled so far: the reply's length.
    private(set) var used = 0

    init(into buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    /// The records packed so far, to send as the reply.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[..<used]) }

    static let direntSize = MemoryLayout<buildfs_fuse_dirent>.size
    static let direntplusSize = MemoryLayout<buildfs_fuse_direntplus>.size

    /// A READDIR record. `nextOffset` is where the listing continues after
    /// this entry; `mode` gives the type (only its S_IFMT bits count).
    mutating func add(name: UnsafeRawBufferPointer, inode: UInt64, mode: mode_t, nextOffset: UInt64) -> Bool {
        let dirent = buildfs_fuse_dirent(ino: inode, off: nextOffset, namelen: UInt32(name.count),
                                         type: (mode & S_IFMT) >> 12)
        return withUnsafeBytes(of: dirent) { append($0, name: name) }
    }

    /// A READDIRPLUS record: the entry as LOOKUP would answer it (the
    /// kernel counts it as a lookup when its node is not 0), then the
    /// dirent, whose inode and type come from the entry's attributes.
    mutating func addPlus(name: UnsafeRawBufferPointer, entry: buildfs_fuse_entry_out, nextOffset: UInt64) -> Bool {
        let record = buildfs_fuse_direntplus(
            entry_out: entry,
            dirent: buildfs_fuse_dirent(ino: entry.attr.ino, off: nextOffset, namelen: UInt32(name.count),
                                        type: (entry.attr.mode & S_IFMT) >> 12))
        return withUnsafeBytes(of: record) { append($0, name: name) }
    }

    /// Copies `fixed` and `name`, zero-pads to 8 bytes; false, changing
    /// nothing, when the padded record does not fit.
    private mutating func append(_ fixed: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer) -> Bool {
        let length = fixed.count + name.count
        let padded = (length + 7) & ~7
        guard padded <= buffer.count - used, let base = buffer.baseAddress else { return false }
        let start = base + used
        start.copyMemory(from: fixed.baseAddress!, byteCount: fixed.count)
        if name.count > 0 { (start + fixed.count).copyMemory(from: name.baseAddress!, byteCount: name.count) }
        (start + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length)
        used += padded
        return true
    }
}
