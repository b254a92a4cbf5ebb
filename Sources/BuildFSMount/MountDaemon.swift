import BuildFSCore
import CFuse3
import Foundation
import Glibc
import Synchronization

/// Runs the FUSE session for one mount until it is unmounted or signalled.
public enum MountDaemon {
    /// Mounts `upper` at `mountpoint`, calls `ready` once the mount is live,
    /// then serves requests on libfuse's worker threads until unmounted
    /// (or SIGTERM/SIGINT/SIGHUP), and unmounts.
    public static func serve(mountpoint: String, upper: String, options: [String], snapshot: SnapshotLayer? = nil,
                             ready: () -> Void) throws {
        raiseFileLimit()
        // The kernel leaves the caller's umask to the daemon (DONT_MASK),
        // which applies it per request (creationMode): its own must be 0.
        umask(0)
        let fileSystem = try PassthroughFileSystem(upper: upper, snapshot: snapshot)
        try fileSystem.snapshot?.expandRoot()
        var operations = FuseOperations.table()
        let arguments = ["buildfs", "-o", MountOptions.fuseOptionString(options)]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var args = buildfs_args_init(Int32(arguments.count), &argv)
        let userdata = Unmanaged.passRetained(fileSystem).toOpaque()
        defer { Unmanaged<PassthroughFileSystem>.fromOpaque(userdata).release() }

        guard let session = buildfs_session_new(&args, &operations, userdata) else {
            throw BuildFSError.usage("libfuse refused the mount options \(arguments[2])")
        }
        defer { fuse_session_destroy(session) }
        guard fuse_set_signal_handlers(session) == 0 else {
            throw BuildFSError.usage("cannot install signal handlers")
        }
        defer { fuse_remove_signal_handlers(session) }
        let resolvedMountpoint = MountPreflight.resolvedPath(mountpoint)
        guard fuse_session_mount(session, mountpoint) == 0 else {
            if geteuid() != 0 && options.contains("allow_other") {
                throw BuildFSError.usage("cannot mount \(mountpoint) with allow_other as a user: add user_allow_other "
                                         + "to /etc/fuse.conf, or mount as root (details in the daemon log)")
            }
            throw BuildFSError.usage("cannot mount \(mountpoint): not permitted; buildfs mount needs root or "
                                     + "CAP_SYS_ADMIN (\(MountPreflight.containerHint))")
        }
        // Only over a snapshot: measured, plain mounts read as fast either way.
        if snapshot != nil, let problem = KernelReadAhead.raise(mountpoint: resolvedMountpoint) { daemonLog(problem) }
        ready()
        let publishing = Running()
        if let snapshot { publishCounters(snapshot, mountpoint: mountpoint, while: publishing) }
        defer { publishing.stop() }
        // Ten idle threads: enough for make -j and parallel reads on two cores.
        _ = buildfs_session_loop_mt(session, 10)
        fuse_session_unmount(session)
    }

    /// Writes the mount's counters for `buildfs stats` once a second while
    /// they change, until `running` is cleared (when the session ends).
    static func publishCounters(_ snapshot: SnapshotLayer, mountpoint: String, while running: Running) {
        let path = MountRegistry.countersPath(for: mountpoint)
        let thread = Thread {
            var last: [String: UInt64] = [:]
            while running.isRunning {
                let now = snapshot.counters.values
                if now != last, let data = try? JSONEncoder().encode(now) {
                    try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
                    last = now
                }
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.start()
    }

    /// One O_PATH descriptor per inode the kernel knows: a 200k-file tree
    /// needs more than the usual 20k limit.
    static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if geteuid() == 0, let text = ProcFile.read("/proc/sys/fs/nr_open"),
           let most = rlim_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            limit.rlim_max = max(limit.rlim_max, most)
        }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            // Root without CAP_SYS_RESOURCE (a container) may not raise the
            // hard limit, but may still raise the soft one up to it.
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            limit.rlim_cur = limit.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}

/// A flag a background thread polls to know when to stop.
final class Running: Sendable {
    private let flag = Atomic<Bool>(true)
    var isRunning: Bool { flag.load(ordering: .relaxed) }
    func stop() { flag.store(false, ordering: .relaxed) }
}
