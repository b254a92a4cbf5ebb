import CLinuxCalls
import Glibc
import Synchronization

/// Keeps the number of O_PATH descriptors the inode table holds under a
/// bound. An inode keeps a descriptor while it is used; cold ones are closed
/// and reopened from their file handle (name_to_handle_at) when needed
/// again. Without it a tree of 200k files needs 200k descriptors, and the
/// hard limit can be far lower (20000 here, with no CAP_SYS_RESOURCE).
///
/// A descriptor is only closed while no request runs: every request holds
/// the gate shared, eviction holds it exclusive (see `serving`). So a
/// descriptor number a request got can never be reused under it.
final class DescriptorCache: @unchecked Sendable {
    /// A descriptor on the upper directory's file system to reopen by
    /// handle: a real one (open_by_handle_at refuses O_PATH descriptors).
    let mountFD: Int32
    /// Eviction starts above this many cached descriptors and halves them.
    let limit: Int
    let open = Atomic<Int>(0)
    private let gate: UnsafeMutablePointer<pthread_rwlock_t>

    init(mountFD: Int32) {
        self.mountFD = mountFD
        var limits = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits)
        // What the inode cache may hold: the limit less a reserve for open
        // files, directory streams, the loop threads' descriptors and splice
        // pipes (three per thread) and the store's packs.
        let total = Int(min(limits.rlim_cur, 1 << 20))
        limit = max(256, total - max(1024, total / 4))
        gate = .allocate(capacity: 1)
        buildfs_rwlock_init_writer_first(gate)
    }

    deinit {
        pthread_rwlock_destroy(gate)
        gate.deallocate()
    }

    /// Runs one request with the gate held shared, then evicts if needed.
    @inline(__always)
    func serving(_ table: InodeTable, _ body: () -> Void) {
        pthread_rwlock_rdlock(gate)
        body()
        pthread_rwlock_unlock(gate)
        if open.load(ordering: .relaxed) > limit { evict(table) }
    }

    /// Closes descriptors until half the limit is left, cold ones first:
    /// one used since the last eviction is spared once (second chance, the
    /// CLOCK approximation of least recently used: one flag per inode
    /// instead of a timestamp). Only inodes holding a descriptor are
    /// listed, never the whole table.
    private func evict(_ table: InodeTable) {
        pthread_rwlock_wrlock(gate)
        defer { pthread_rwlock_unlock(gate) }
        guard open.load(ordering: .relaxed) > limit else { return } // another thread did it
        let candidates = table.inodes(where: \.isEvictable)
        let target = limit / 2
        for inode in candidates where open.load(ordering: .relaxed) > target && !inode.wasUsedRecently() {
            inode.closeDescriptor()
        }
        for inode in candidates where open.load(ordering: .relaxed) > target { inode.closeDescriptor() }
    }
}
