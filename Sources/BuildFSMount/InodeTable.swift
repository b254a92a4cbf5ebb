import BuildFSCore
import CFuse3
import Glibc
import CLinuxCalls
import Synchronization

/// Identity of a file in the upper directory.
struct InodeKey: Hashable {
    var device: UInt64
    var inode: UInt64
}

/// A file the kernel knows about: an O_PATH descriptor on it, so that every
/// operation works on the file itself rather than on a path (no path length
/// limits, no races with renames). Hard links share one Inode. The
/// descriptor may be closed when cold and reopened from the file handle
/// (DescriptorCache); `fd` is valid for the request that asked for it.
final class Inode: @unchecked Sendable {
    let key: InodeKey
    /// S_IFREG, S_IFDIR, S_IFLNK, ...
    let type: mode_t
    /// With a snapshot under the mount: is this a stub or a pending
    /// directory? Read from xattrs on first need (nil until then), then kept
    /// up to date by the daemon, the only writer. The lock also serializes
    /// expansion and hydration of this inode.
    let lowerState = Mutex<LowerState?>(nil)

    private let descriptor: Mutex<Int32>
    /// Nil when the file system gives no handles: then never evicted.
    private let handle: UnsafeMutablePointer<buildfs_file_handle>?
    private let cache: DescriptorCache?
    private let used = Atomic<UInt64>(0)

    /// `cache` nil: the descriptor stays open for the inode's life (the root).
    init(fd: Int32, key: InodeKey, type: mode_t, cache: DescriptorCache?) {
        self.key = key
        self.type = type
        self.cache = cache
        descriptor = Mutex(fd)
        var handle: UnsafeMutablePointer<buildfs_file_handle>?
        if cache != nil {
            // Ask with room for the largest handle, keep only its bytes
            // (8 on ext4 instead of 136): one per inode, 200k of them.
            var candidate = buildfs_file_handle()
            if buildfs_handle_of(fd, &candidate) == 0 {
                let size = 8 + Int(candidate.handle_bytes)
                let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
                withUnsafeBytes(of: &candidate) { raw.copyMemory(from: $0.baseAddress!, byteCount: size) }
                handle = raw.assumingMemoryBound(to: buildfs_file_handle.self)
            }
        }
        self.handle = handle
        cache?.open.add(1, ordering: .relaxed)
    }

    deinit {
        closeDescriptor(evenIfPinned: true)
        handle?.deallocate()
    }

    var isSymlink: Bool { type == S_IFLNK }
    var isDirectory: Bool { type == S_IFDIR }
    var isRegularFile: Bool { type == S_IFREG }

    /// The O_PATH descriptor, reopened by handle if it was evicted; -1 when
    /// the file is gone for good (its calls then fail with EBADF).
    var fd: Int32 {
        if let cache { used.store(cache.tick(), ordering: .relaxed) }
        return descriptor.withLock { fd in
            if fd < 0, let handle, let cache {
                fd = buildfs_open_by_handle(cache.mountFD, handle, BUILDFS_O_PATH | O_CLOEXEC)
                if fd >= 0 { cache.open.add(1, ordering: .relaxed) }
            }
            return fd
        }
    }

    var lastUse: UInt64 { used.load(ordering: .relaxed) }
    /// Holds a descriptor that may be closed (and reopened by handle).
    var isEvictable: Bool { handle != nil && descriptor.withLock { $0 >= 0 } }

    /// Only while no request runs (the cache's gate held exclusive).
    func closeDescriptor(evenIfPinned: Bool = false) {
        guard handle != nil || evenIfPinned else { return }
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            close(fd)
            fd = -1
            cache?.open.subtract(1, ordering: .relaxed)
        }
    }

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
    let cache: DescriptorCache
    private let entries = Mutex<[InodeKey: Entry]>([:])

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
            let inode = Inode(fd: fd, key: key, type: st.st_mode & S_IFMT, cache: cache)
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

    func allInodes() -> [Inode] { entries.withLock { $0.values.map(\.inode) } }
}
