import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc
import Synchronization

/// The inodes the kernel holds, by their FUSE number. A FUSE inode number
/// is the address of the Inode object (libfuse's passthrough_ll does the
/// same): no second map, and safe because the table keeps a strong reference
/// until the kernel's lookups are all forgotten.
final class InodeTable: Sendable {
    let root: Inode
    let cache: DescriptorCache
    private let inodes = Mutex(InodeMap())

    init(root: Inode, cache: DescriptorCache) {
        self.root = root
        self.cache = cache
    }

    func inode(_ number: fuse_ino_t) -> Inode {
        if number == fuse_ino_t(FUSE_ROOT_ID) { return root }
        return Unmanaged<Inode>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(number))!).takeUnretainedValue()
    }

    func number(of inode: Inode) -> fuse_ino_t {
        if inode === root { return fuse_ino_t(FUSE_ROOT_ID) }
        return fuse_ino_t(UInt(bitPattern: Unmanaged.passUnretained(inode).toOpaque()))
    }

    /// Finds `name` in `parent` and counts a kernel lookup of it.
    func lookUp(_ name: UnsafePointer<CChar>, in parent: Inode) throws -> (Inode, stat) {
        let fd = try sys("openat") { openat(parent.fd, name, BUILDFS_O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        var st = stat()
        guard fstatat(fd, "", &st, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else {
            let error = SystemCallError("fstatat")
            close(fd)
            throw error
        }
        return (remember(fd: fd, stat: st), st)
    }

    /// Counts one kernel lookup of the file open as `fd` (O_PATH): returns
    /// its Inode, new or known (then `fd` is closed).
    func remember(fd: Int32, stat st: stat) -> Inode {
        let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if key == root.key {
            close(fd)
            return root
        }
        return inodes.withLock { inodes in
            if let known = inodes.find(key) {
                if known.lookups < .max { known.lookups += 1 }
                close(fd)
                return known
            }
            let inode = Inode(fd: fd, key: key, type: st.st_mode & S_IFMT, cache: cache)
            inodes.insert(inode)
            return inode
        }
    }

    /// The inode of `key` if the kernel knows it (no lookup counted).
    func known(_ key: InodeKey) -> Inode? {
        inodes.withLock { $0.find(key) }
    }

    /// The kernel dropped `count` lookups of `number`.
    func forget(_ number: fuse_ino_t, count: UInt64) {
        if number == fuse_ino_t(FUSE_ROOT_ID) { return }
        let inode = self.inode(number)
        // The last reference goes outside the lock: closing an fd can be slow.
        withExtendedLifetime(inode) {
            inodes.withLock { inodes in
                guard inode.lookups < .max else { return } // saturated: kept for good
                inode.lookups -= UInt32(min(count, UInt64(inode.lookups)))
                if inode.lookups == 0 { inodes.remove(inode) }
            }
        }
    }

    /// The inodes for which `include` holds, found with the table locked.
    func inodes(where include: @Sendable (Inode) -> Bool) -> [Inode] {
        inodes.withLock { inodes in
            var found: [Inode] = []
            inodes.forEach { if include($0) { found.append($0) } }
            return found
        }
    }
}
