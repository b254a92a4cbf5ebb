import CFuseKernel
@testable import BuildFSMount
import Glibc

/// Names as Swift strings, for the tests that pack listings by hand (the
/// daemon packs the C names it read from the upper directory).
extension DirectoryEntries {
    mutating func add(name: String, inode: UInt64, mode: mode_t, nextOffset: UInt64) -> Bool {
        var name = name
        return name.withUTF8 { add(name: UnsafeRawBufferPointer($0), inode: inode, mode: mode, nextOffset: nextOffset) }
    }

    mutating func addPlus(name: String, entry: buildfs_fuse_entry_out, nextOffset: UInt64) -> Bool {
        var name = name
        return name.withUTF8 { addPlus(name: UnsafeRawBufferPointer($0), entry: entry, nextOffset: nextOffset) }
    }
}
