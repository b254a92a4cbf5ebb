import BuildFSCore
import CFuse3
import Glibc
import Synchronization

/// Identity of a file in the upper directory.
struct InodeKey: Hashable {
    var device: UInt64
    var inode: UInt64
}

/// A file the kernel knows about: an O_PATH descriptor on it, so that every
/// operation works on the file itself rather than on a path (no path length
/// limits, no races with renames). Hard links share one Inode.
final class Inode: @unchecked Sendable {
    let fd: Int32
    let key: InodeKey
    /// S_IFREG, S_IFDIR, S_IFLNK, ...
    let type: mode_t
    /// With a snapshot under the mount: is this a stub or a pending
    /// directory? Read from xattrs on first need (nil until then), then kept
    /// up to date by the daemon, the only writer. The lock also serializes
    /// expansion and hydration of this inode.
    let lowerState = Mutex<LowerState?>(nil)

    init(fd: Int32, key: InodeKey, type: mode_t) {
        self.fd = fd
        self.key = key
        self.type = type
    }

    var isSymlink: Bool { type == S_IFLNK }
    var isDirectory: Bool { type == S_IFDIR }
    var isRegularFile: Bool { type == S_IFREG }

    deinit { close(fd) }

    /// The path through /proc that reopens this file with real access modes.
    var procPath: String { "/proc/self/fd/\(fd)" }
}

/// What the snapshot under the mount still owns of an inode.
struct LowerState: Sendable {
    /// A file not hydrated yet: its content is in the store.
    var stub: StubReference?
    /// A directory not expanded yet: its entries are this tree's.
    var pendingTree: ObjectID?
    /// A directory whose entries and whose subdirectories' entries are laid
    /// out (in this daemon's lifetime): names in it can be used.
    var ready = false
    /// A hard-linked file also linked into the link index.
    var indexed = false
}

/// The inodes the kernel holds, by their FUSE number. A FUSE inode number
/// is the address of the Inode object (libfuse's passthrough_ll does the
/// same): no second map, and safe because the table keeps a strong reference
/// until the kernel's lookups are all forgotten.
final class InodeTable: Sendable {
    private struct Entry {
        let inode: Inode
        var lookups: UInt64
    }

    let root: Inode
    private let entries = Mutex<[InodeKey: Entry]>([:])

    init(root: Inode) { self.root = root }

    func inode(_ number: fuse_ino_t) -> Inode {
        if number == fuse_ino_t(FUSE_ROOT_ID) { return root }
        return Unmanaged<Inode>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(number))!).takeUnretainedValue()
    }

    func number(of inode: Inode) -> fuse_ino_t {
        if inode === root { return fuse_ino_t(FUSE_ROOT_ID) }
        return fuse_ino_t(UInt(bitPattern: Unmanaged.passUnretained(inode).toOpaque()))
    }

    /// Counts one kernel lookup of the file open as `fd` (O_PATH): returns
    /// its Inode, new or known (then `fd` is closed).
    func remember(fd: Int32, stat st: stat) -> Inode {
        let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if key == root.key {
            close(fd)
            return root
        }
        return entries.withLock { entries in
            if var entry = entries[key] {
                entry.lookups += 1
                entries[key] = entry
                close(fd)
                return entry.inode
            }
            let inode = Inode(fd: fd, key: key, type: st.st_mode & S_IFMT)
            entries[key] = Entry(inode: inode, lookups: 1)
            return inode
        }
    }

    /// The kernel dropped `count` lookups of `number`.
    func forget(_ number: fuse_ino_t, count: UInt64) {
        if number == fuse_ino_t(FUSE_ROOT_ID) { return }
        let inode = self.inode(number)
        // Release the last reference outside the lock: closing an fd can be slow.
        let dropped: Inode? = entries.withLock { entries in
            guard var entry = entries[inode.key], entry.inode === inode else { return nil }
            entry.lookups -= min(count, entry.lookups)
            if entry.lookups == 0 {
                entries[inode.key] = nil
                return entry.inode
            }
            entries[inode.key] = entry
            return nil
        }
        _ = dropped
    }

    var count: Int { entries.withLock { $0.count } }
}
