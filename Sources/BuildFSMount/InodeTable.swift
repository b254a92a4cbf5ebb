import BuildFSCore
import CFuseKernel
import CLinuxCalls
import Glibc
import Synchronization

/// The inodes the kernel holds: by file identity (to find a file's Inode
/// again when another name or lookup reaches it) and by the number the
/// kernel knows it by (checked: see InodeNumbers). The table holds each
/// inode until the kernel has forgotten all its lookups.
final class InodeTable: Sendable {
    let root: Inode
    let cache: DescriptorCache
    let passthrough = PassthroughFiles()
    private let inodes = Mutex(Inodes())

    private struct Inodes: ~Copyable {
        var byKey = InodeMap()
        var byNumber = InodeNumbers()
    }

    init(root: Inode, cache: DescriptorCache) {
        self.root = root
        self.cache = cache
    }

    /// The inode the kernel means by `number`; ESTALE for a number the
    /// daemon did not give or whose lookups the kernel has all forgotten.
    func inode(_ number: UInt64) throws(SystemCallError) -> Inode {
        if number == UInt64(BUILDFS_FUSE_ROOT_ID) { return root }
        guard let inode = inodes.withLock({ $0.byNumber.inode(UInt64(number)) }) else {
            throw SystemCallError("inode \(number)", code: ESTALE)
        }
        return inode
    }

    func number(of inode: Inode) -> UInt64 { inode.number }

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
            if let known = inodes.byKey.find(key) {
                if known.lookups < .max { known.lookups += 1 }
                close(fd)
                return known
            }
            let inode = inodes.byNumber.add { number in
                Inode(fd: fd, key: key, number: number, type: st.st_mode & S_IFMT, cache: cache)
            }
            inodes.byKey.insert(inode)
            return inode
        }
    }

    /// The inode of `key` if the kernel knows it (no lookup counted).
    func known(_ key: InodeKey) -> Inode? {
        inodes.withLock { $0.byKey.find(key) }
    }

    /// The kernel dropped `count` lookups of `number` (a number it does not
    /// hold is ignored: FORGET has no reply to refuse it with).
    func forget(_ number: UInt64, count: UInt64) {
        if number == UInt64(BUILDFS_FUSE_ROOT_ID) { return }
        // The last reference goes outside the lock: closing an fd can be slow.
        let forgotten: Inode? = inodes.withLock { inodes in
            guard let inode = inodes.byNumber.inode(UInt64(number)) else { return nil }
            guard inode.lookups < .max else { return nil } // saturated: kept for good
            inode.lookups -= UInt32(min(count, UInt64(inode.lookups)))
            guard inode.lookups == 0 else { return nil }
            inodes.byNumber.remove(inode)
            inodes.byKey.remove(inode)
            return inode
        }
        if let forgotten { passthrough.release(forgotten) }
    }

    /// The inodes for which `include` holds, found with the table locked.
    func inodes(where include: @Sendable (Inode) -> Bool) -> [Inode] {
        inodes.withLock { inodes in
            var found: [Inode] = []
            inodes.byKey.forEach { if include($0) { found.append($0) } }
            return found
        }
    }
}
