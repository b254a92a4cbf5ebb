import BuildFSCore
import Glibc
import Synchronization

/// Regular files whose reads, writes and mmaps the kernel sends straight to
/// the upper file (FUSE passthrough, Linux 6.9+) instead of to the daemon.
/// Each upper file is registered once (FUSE_DEV_IOC_BACKING_OPEN on its
/// inode's O_PATH descriptor: the kernel opens the upper file itself, with
/// the opener's flags and the daemon's credentials), its backing id given
/// in every OPEN or CREATE reply for it, and closed when the kernel forgets
/// the inode: an id closed sooner could be gone before the opener, woken
/// by the reply, looks it up.
///
/// Off (nil ids: the daemon serves the file) until the kernel grants
/// passthrough at INIT, and for good once registering is refused for the
/// whole mount: EPERM without CAP_SYS_ADMIN in the initial user namespace
/// (a rootless container), ELOOP when the upper directory is itself on a
/// stacked file system such as overlayfs (the mount allows one level).
///
/// Only for mounts without a snapshot (see `initTerms`): the kernel refuses
/// (EIO) to have one inode open both passed through and through the
/// daemon, and a stub can only be served by the daemon.
final class PassthroughFiles: Sendable {
    private let channel = Mutex<KernelChannel?>(nil)
    private let refused = Mutex<(@Sendable (String) -> Void)?>(nil)

    /// Turns passthrough on for files opened from now on; `refused` is
    /// told why if it goes off for the mount.
    func enable(on channel: KernelChannel, refused: @escaping @Sendable (String) -> Void) {
        self.channel.withLock { $0 = channel }
        self.refused.withLock { $0 = refused }
    }

    var isEnabled: Bool { channel.withLock { $0 != nil } }

    /// The backing id to open `inode` with, registering it on first use;
    /// nil when the daemon serves it.
    func backingID(for inode: Inode) -> Int32? {
        let known = inode.backingID.load(ordering: .acquiring)
        if known > 0 { return known }
        guard let channel = channel.withLock({ $0 }) else { return nil }
        let id: Int32
        do {
            id = try channel.openBacking(fd: inode.fd)
        } catch where error.code == EPERM || error.code == ELOOP {
            self.channel.withLock { $0 = nil }
            daemonLog("passthrough off for this mount: \(error) (reads and writes go through the daemon)")
            refused.withLock { $0 }?("\(error)")
            return nil
        } catch {
            daemonLog("passthrough not used for one file: \(error)")
            return nil
        }
        // Two opens at once: the first id published is the inode's.
        let (published, winner) = inode.backingID.compareExchange(expected: 0, desired: id, ordering: .acquiringAndReleasing)
        guard published else {
            try? channel.closeBacking(id: id)
            return winner
        }
        return id
    }

    /// `inode` left the table: its backing id, if any, goes too.
    func release(_ inode: Inode) {
        let id = inode.backingID.exchange(0, ordering: .acquiringAndReleasing)
        guard id > 0, let channel = channel.withLock({ $0 }) else { return }
        try? channel.closeBacking(id: id)
    }
}
