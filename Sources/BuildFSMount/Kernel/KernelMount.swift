import BuildFSCore
import CFuse3
import Glibc
import Synchronization

/// A FUSE mount made by libfuse and served by the daemon's own loop:
/// libfuse only mounts (fuse_session_new with no operations, then
/// fuse_session_mount, which opens /dev/fuse and calls mount(2) or
/// fusermount3) and unmounts. Everything in between is KernelSession's.
final class KernelMount: Sendable {
    let mountpoint: String
    /// libfuse's session; nil once unmounted.
    private let session: Mutex<LibfuseSession?>

    /// The session pointer, used only under the mutex.
    private struct LibfuseSession: @unchecked Sendable { let pointer: OpaquePointer }

    /// Mounts at `mountpoint` with the `-o` options `options` (as libfuse
    /// takes them: "ro", "allow_other", "fsname=...", ...).
    init(mountpoint: String, options: [String]) throws {
        self.mountpoint = mountpoint
        let arguments = ["buildfs"] + (options.isEmpty ? [] : ["-o", options.joined(separator: ",")])
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var args = buildfs_args_init(Int32(arguments.count), &argv)
        defer { fuse_opt_free_args(&args) }
        var noOperations = fuse_lowlevel_ops()
        guard let made = buildfs_session_new(&args, &noOperations, nil) else {
            throw BuildFSError.usage("libfuse refused the mount options \(options.joined(separator: ","))")
        }
        guard fuse_session_mount(made, mountpoint) == 0 else {
            fuse_session_destroy(made)
            throw BuildFSError.usage("cannot mount \(mountpoint) (details in the daemon log)")
        }
        session = Mutex(LibfuseSession(pointer: made))
    }

    /// A channel on the mounted session, for KernelSession. On a duplicate
    /// of libfuse's descriptor: libfuse closes its own at unmount.
    func channel() throws -> KernelChannel {
        try session.withLock { session throws in
            guard let session else { throw BuildFSError.usage("\(mountpoint) is no longer mounted") }
            return KernelChannel(adopting: try sys("dup") { fcntl(fuse_session_fd(session.pointer), F_DUPFD_CLOEXEC, 0) })
        }
    }

    /// Unmounts (lazily, as libfuse does: the mount goes away once nothing
    /// uses it); the loop's reads then end with ENODEV. Idempotent.
    func unmount() {
        session.withLock { session in
            guard let mounted = session else { return }
            fuse_session_unmount(mounted.pointer)
            fuse_session_destroy(mounted.pointer)
            session = nil
        }
    }

    deinit { unmount() }
}
