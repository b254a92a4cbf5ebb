import BuildFSCore
import Foundation
import Glibc
import Synchronization

/// Runs the FUSE session for one mount until it is unmounted or signalled.
public enum MountDaemon {
    /// Mounts `upper` at `mountpoint`, calls `ready` once the mount is live,
    /// then serves requests on its own loop (KernelSession; libfuse only
    /// mounts) until unmounted (or SIGTERM/SIGINT/SIGHUP), and unmounts.
    public static func serve(mountpoint: String, upper: String, options: [String], snapshot: SnapshotLayer? = nil,
                             ready: () -> Void) throws {
        raiseFileLimit()
        let ringChoice = KernelRing.choice(in: ProcessInfo.processInfo.environment)
        // Why the ring does not serve, once known: in the log when it was
        // insisted on, else on the transport line only (a log of nothing
        // but the transport line goes with the mount).
        var ringNotUsed: String?
        let moduleSwitch = ringChoice != .off ? KernelRing.ModuleSwitch() : nil
        if let problem = moduleSwitch?.problem { ringNotUsed = problem }
        // The kernel leaves the caller's umask to the daemon (DONT_MASK),
        // which applies it per request (creationMode): its own must be 0.
        umask(0)
        let fileSystem = try PassthroughFileSystem(upper: upper, snapshot: snapshot)
        try fileSystem.snapshot?.expandRoot()
        // Before any thread starts: they all inherit the blocked signals,
        // which only StopSignals' thread takes.
        let stopSignals = StopSignals()
        let resolvedMountpoint = MountPreflight.resolvedPath(mountpoint)
        let mount: KernelMount
        do {
            mount = try KernelMount(mountpoint: mountpoint, options: MountOptions.fuseOptions(options))
        } catch {
            if geteuid() != 0 && options.contains("allow_other") {
                throw BuildFSError.usage("cannot mount \(mountpoint) with allow_other as a user: add user_allow_other "
                                         + "to /etc/fuse.conf, or mount as root (details in the daemon log)")
            }
            throw BuildFSError.usage("cannot mount \(mountpoint): not permitted; buildfs mount needs root or "
                                     + "CAP_SYS_ADMIN (\(MountPreflight.containerHint))")
        }
        defer { mount.unmount() }
        // Only over a snapshot: measured, plain mounts read as fast either way.
        if snapshot != nil, let problem = KernelReadAhead.raise(mountpoint: resolvedMountpoint) { daemonLog(problem) }
        let session = KernelSession(channel: try mount.channel())
        var terms = fileSystem.initTerms
        if ringChoice != .off && ringNotUsed == nil {
            if let reason = KernelRing.unavailableReason() {
                ringNotUsed = reason
            } else {
                terms.wanted.insert(.overIoUring)
            }
        }
        let connection = try session.start(terms)
        moduleSwitch?.release()
        let handler: KernelSession.Handler = { request, sink in fileSystem.serve(request, on: sink) }
        let ring: KernelRing?
        do {
            ring = try startRing(if: terms.wanted.contains(.overIoUring), session: session, connection: connection,
                                 handler: handler)
        } catch {
            ring = nil
            ringNotUsed = error.reason
        }
        if ringChoice == .insisted, let ringNotUsed {
            daemonLog("io_uring transport not used (\(ringNotUsed)): serving over /dev/fuse")
        }
        let transport = ring.map {
            "own FUSE loop over io_uring, \($0.queueCount) queues of \($0.threadsPerQueue) threads "
                + "(and 1 thread on /dev/fuse), \(connection.summary)"
        } ?? "own FUSE loop, \(servingThreads) threads"
            + (ringChoice == .off ? " (io_uring switched off)" : ringNotUsed.map { " (not over io_uring: \($0))" } ?? "")
            + ", \(connection.summary)"
        daemonLog(MountRegistry.transportLogMessage(transport))
        MountRegistry.recordTransport(transport, for: mountpoint)
        if connection.granted.contains(.passthrough) {
            fileSystem.table.passthrough.enable(on: session.channel) { reason in
                MountRegistry.recordTransport(transport + "; passthrough refused (\(reason))", for: mountpoint)
            }
        }
        ready()
        let publishing = Running()
        if let snapshot { publishCounters(snapshot, mountpoint: mountpoint, while: publishing) }
        defer { publishing.stop() }
        stopSignals.whenReceived {
            mount.unmount()
            session.stop()
            ring?.stop()
        }
        // Over io_uring, /dev/fuse still carries FORGET and INTERRUPT: one
        // thread reads it.
        try session.serve(threads: ring == nil ? servingThreads : 1, handler: handler)
        ring?.stop()
    }

    /// Why the ring does not serve a session.
    struct RingNotUsed: Error {
        var reason: String
    }

    /// The io_uring transport when it was asked for (`wanted`) and the
    /// kernel granted it; nil when not wanted. Throws why it is not used
    /// when not granted or it could not be set up: the session is then
    /// served over /dev/fuse.
    static func startRing(if wanted: Bool, session: KernelSession, connection: KernelConnection,
                          handler: @escaping KernelSession.Handler) throws(RingNotUsed) -> KernelRing? {
        guard wanted else { return nil }
        guard connection.granted.contains(.overIoUring) else {
            throw RingNotUsed(reason: "the kernel did not offer it")
        }
        do {
            return try KernelRing.start(fuse: session.channel, connection: connection, handler: handler)
        } catch {
            throw RingNotUsed(reason: "\(error)")
        }
    }

    /// Loop threads: requests block on the upper file system and, over a
    /// snapshot, on the store (a remote one's round trips), so more than
    /// the CPUs; ten as libfuse's loop kept idle for make -j and parallel
    /// reads on two cores.
    static let servingThreads = 10

    /// Writes the mount's counters for `buildfs stats` four times a second
    /// while they change (a file rename each: cheap; once a second left a
    /// `stats` right after a build showing nothing served yet), until
    /// `running` is cleared (when the session ends).
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
                Thread.sleep(forTimeInterval: 0.25)
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

/// SIGTERM, SIGINT and SIGHUP end the session: blocked in the thread that
/// makes this (and every thread it starts later), and taken by one thread
/// of its own, which runs the given action once.
final class StopSignals: Sendable {
    private static let signals = [SIGTERM, SIGINT, SIGHUP]

    init() {
        var set = Self.set()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A reader gone from a pipe the daemon writes to is an error to
        // handle where it happens, not a reason to die.
        signal(SIGPIPE, SIG_IGN)
    }

    private static func set() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return set
    }

    func whenReceived(_ action: @escaping @Sendable () -> Void) {
        let thread = Thread {
            var set = Self.set()
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { return }
            daemonLog("signal \(received): unmounting")
            action()
        }
        thread.start()
    }
}
