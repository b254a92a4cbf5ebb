import BuildFSCore
import CLinuxCalls
import Glibc
import Synchronization

/// A file the kernel knows about: an O_PATH descriptor on it, so that every
/// operation works on the file itself rather than on a path (no path length
/// limits, no races with renames). Hard links share one Inode. The
/// descriptor may be closed when cold and reopened from the file handle
/// (DescriptorCache); `fd` is valid for the request that asked for it.
///
/// One exists per file the kernel holds (200k in a big tree), so it is kept
/// to 84 bytes (a 96-byte malloc chunk): no lock of its own (the descriptor
/// is an atomic, the lookup count is the table's), the handle inline, the
/// layer state boxed, fields ordered so that none needs padding.
final class Inode: @unchecked Sendable {
    let key: InodeKey
    /// The number the kernel knows it by (see InodeNumbers).
    let number: UInt64
    private let handle: CompactFileHandle
    /// Set by every use of the descriptor, cleared by the eviction that
    /// spared it (second chance).
    private let recentlyUsed = Atomic<Bool>(true)
    /// The S_IFMT bits of the mode (they fit in 16).
    private let typeBits: UInt16
    /// -1 while evicted (or gone for good).
    private let descriptor: Atomic<Int32>
    /// Kernel lookups not forgotten yet; changed only under the table's
    /// lock. Saturates: an inode looked up 2^32 times stays for good.
    var lookups: UInt32 = 1
    private let cache: DescriptorCache?
    private let layerCell = AtomicLazyReference<LayerStateCell>()
    /// The kernel's id of the upper file as a passthrough backing file; 0
    /// while it has none (see PassthroughFiles).
    let backingID = Atomic<Int32>(0)

    /// `cache` nil: the descriptor stays open for the inode's life (the root).
    init(fd: Int32, key: InodeKey, number: UInt64, type: mode_t, cache: DescriptorCache?) {
        self.key = key
        self.number = number
        handle = cache != nil ? CompactFileHandle(of: fd) : CompactFileHandle()
        typeBits = UInt16(truncatingIfNeeded: type & S_IFMT)
        descriptor = Atomic(fd)
        self.cache = cache
        cache?.open.add(1, ordering: .relaxed)
    }

    deinit {
        let fd = descriptor.load(ordering: .acquiring)
        if fd >= 0 {
            close(fd)
            cache?.open.subtract(1, ordering: .relaxed)
        }
    }

    /// S_IFREG, S_IFDIR, S_IFLNK, ...
    var type: mode_t { mode_t(typeBits) }
    var isSymlink: Bool { type == S_IFLNK }
    var isDirectory: Bool { type == S_IFDIR }
    var isRegularFile: Bool { type == S_IFREG }

    /// The O_PATH descriptor, reopened by handle if it was evicted; -1 when
    /// the file is gone for good (its calls then fail with EBADF). Two
    /// requests may reopen at once: the first to publish its descriptor
    /// wins, the other closes its own.
    var fd: Int32 {
        guard let cache else { return descriptor.load(ordering: .relaxed) }
        recentlyUsed.store(true, ordering: .relaxed)
        let current = descriptor.load(ordering: .acquiring)
        guard current < 0, handle.exists else { return current }
        let reopened = handle.open(on: cache.mountFD, flags: BUILDFS_O_PATH | O_CLOEXEC)
        guard reopened >= 0 else { return -1 }
        let (published, winner) = descriptor.compareExchange(expected: -1, desired: reopened,
                                                             ordering: .acquiringAndReleasing)
        guard published else {
            close(reopened)
            return winner
        }
        cache.open.add(1, ordering: .relaxed)
        return reopened
    }

    /// Holds a descriptor that may be closed (and reopened by handle). A
    /// regular file whose last link is gone is not: a program may still
    /// have it open (the kernel opens files without telling the daemon, see
    /// PassthroughFileSystem+Files), and only this descriptor keeps its
    /// bytes; no handle reopens it.
    var isEvictable: Bool {
        let fd = descriptor.load(ordering: .relaxed)
        guard handle.exists, fd >= 0 else { return false }
        guard isRegularFile else { return true }
        var st = stat()
        return fstat(fd, &st) != 0 || st.st_nlink > 0
    }

    /// Whether the descriptor was used since the last call (which clears it).
    func wasUsedRecently() -> Bool { recentlyUsed.exchange(false, ordering: .relaxed) }

    /// Only while no request runs (the cache's gate held exclusive), and
    /// only when evictable.
    func closeDescriptor() {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        guard fd >= 0 else { return }
        close(fd)
        cache?.open.subtract(1, ordering: .relaxed)
    }

    /// Runs `body` under the inode's layer-state lock (see LayerStateCell).
    func withLayerState<R: Sendable, E: Error>(_ body: (inout LayerState?) throws(E) -> R) throws(E) -> R {
        let cell = layerCell.load() ?? layerCell.storeIfNil(LayerStateCell())
        return try cell.state.withLock { (state) throws(E) -> R in try body(&state) }
    }

    /// Runs `body` under the inode's page-cache-fill lock (see LayerStateCell).
    func withPageCacheFill<R>(_ body: (inout Bool) throws -> R) rethrows -> R {
        let cell = layerCell.load() ?? layerCell.storeIfNil(LayerStateCell())
        return try cell.pageCacheFill.withLock { filled in try body(&filled) }
    }

    /// The path through /proc that reopens this file with real access modes.
    var procPath: String { "/proc/self/fd/\(fd)" }
}
