import BuildFSCore
import CFuseKernel
import CIoUring
import CLinuxCalls
import Glibc
import Synchronization

/// FUSE over io_uring (Linux 6.14+): requests come to the daemon in
/// io_uring entries instead of reads of /dev/fuse, and replies go back in
/// the same entries, a commit and the next fetch in one system call.
///
/// The kernel keeps one queue per possible CPU and puts a request in the
/// queue of the CPU its caller runs on; each queue here is served by
/// `threadsPerQueue` threads pinned to that CPU, each with its own io_uring
/// and one entry (KernelRingQueue), so a request that waits (an fsync, a
/// block fetched from a remote store) holds only its own thread: the kernel
/// gives the CPU's next request to another thread's free entry. Pinning is
/// what pays: unpinned, the same threads read a snapshot slower than the
/// /dev/fuse loop (measured: 1.55 s against 1.49 s; pinned 1.31 s).
/// FORGET, INTERRUPT and notifications still go over /dev/fuse, so the
/// caller keeps a KernelSession loop there.
///
/// Used unless switched off (`isWanted`) when granted at INIT. Once the
/// kernel has granted it, it holds every request until each queue has
/// registered an entry, or until a REGISTER fails, which makes it fall back
/// to /dev/fuse for good: `start` makes sure of one or the other.
final class KernelRing: Sendable {
    let queueCount: Int
    let threadsPerQueue: Int
    private let threads = LoopThreads()

    /// What kept the ring from serving; the daemon then serves over /dev/fuse.
    struct SetupFailure: Error, CustomStringConvertible {
        var queue: UInt16
        var step: String
        var code: Int32

        var description: String { "io_uring queue \(queue): \(step) failed: \(String(cString: strerror(code)))" }
    }

    /// The environment switch: BUILDFS_FUSE_IO_URING=0 serves /dev/fuse
    /// only; =1 insists, and says in the log why the ring is not used.
    static let environmentVariable = "BUILDFS_FUSE_IO_URING"

    enum Choice {
        case off, wherePossible, insisted
    }

    static func choice(in environment: [String: String]) -> Choice {
        switch environment[environmentVariable] {
        case "0": .off
        case "1": .insisted
        default: .wherePossible
        }
    }

    /// Threads per queue: enough that a waiting request rarely holds a
    /// CPU's next one (4 on two CPUs, as the /dev/fuse loop's ten threads
    /// are), at least 2 on big machines, where each thread's entry buffer
    /// (max_write) adds up.
    static func threadsPerQueue(queues: Int) -> Int { max(2, min(4, 8 / max(1, queues))) }

    /// The fuse module's switch: the kernel offers io_uring at INIT only
    /// while it is Y.
    static let moduleParameter = "/sys/module/fuse/parameters/enable_uring"

    /// The module's switch, held by a daemon from before its mount to its
    /// INIT: turned on if it was off (root may), and back off once INIT has
    /// taken io_uring. The kernel reads it only at INIT and at the first
    /// REGISTER; left on, every other FUSE server here would be offered
    /// io_uring, and one that took it without registering entries would
    /// have every request held. An exclusive lock on a file beside the mount
    /// records keeps concurrent mounts from turning it off under each
    /// other's INIT.
    final class ModuleSwitch {
        private var lock: Int32
        private var turnedOn = false
        /// Why it is off and stays off, for the log; nil when it is on.
        private(set) var problem: String?

        init() {
            mkdir(MountRegistry.directory, 0o755)
            lock = open(MountRegistry.directory + "/enable_uring.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if lock >= 0 { flock(lock, LOCK_EX) }
            guard let value = ProcFile.read(moduleParameter) else {
                problem = "no \(moduleParameter)"
                return
            }
            if value.hasPrefix("Y") { return }
            turnedOn = Self.write("Y")
            if !turnedOn { problem = "\(moduleParameter) is off and not writable here" }
        }

        /// INIT is answered (or the mount failed): the switch as it was,
        /// and the lock to the next mount.
        func release() {
            if turnedOn { _ = Self.write("N") }
            turnedOn = false
            if lock >= 0 { close(lock) }
            lock = -1
        }

        deinit { release() }

        private static func write(_ value: String) -> Bool {
            let fd = open(moduleParameter, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return Glibc.write(fd, value, 1) == 1
        }
    }

    /// Why this process cannot make the rings the queues need (nil: it
    /// can). Asked before INIT: a grant the daemon could not use would
    /// leave every request waiting.
    static func unavailableReason() -> String? {
        var ring = buildfs_uring()
        let made = buildfs_uring_setup(&ring, 8, BUILDFS_URING_SERVING_FLAGS)
        guard made == 0 else { return "io_uring_setup failed: \(String(cString: strerror(-made)))" }
        buildfs_uring_close(&ring)
        return nil
    }

    /// The kernel's queue count: its possible CPUs (/sys/devices/system/cpu/possible,
    /// "0-1" or "0,2-3"), at least 1.
    static func possibleCPUs(_ list: String? = ProcFile.read("/sys/devices/system/cpu/possible")) -> Int {
        let ranges = (list ?? "").split(whereSeparator: { $0 == "," || $0.isWhitespace })
        let count = ranges.reduce(0) { total, range in
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            guard let first = bounds.first else { return total }
            return total + (bounds.count > 1 ? bounds[1] - first + 1 : 1)
        }
        return max(1, count)
    }

    private init(queueCount: Int) {
        self.queueCount = queueCount
        threadsPerQueue = Self.threadsPerQueue(queues: queueCount)
    }

    /// Starts the threads of every queue, each registering its entry, and
    /// returns once all have (the kernel then serves every request through
    /// them), or throws the first failure once the kernel has fallen back
    /// to /dev/fuse and the threads have ended. `fuse` is the session's
    /// channel; `connection` sizes the payloads.
    static func start(fuse: KernelChannel, connection: KernelConnection,
                      handler: @escaping KernelSession.Handler) throws(SetupFailure) -> KernelRing {
        let ring = KernelRing(queueCount: possibleCPUs())
        let payloadSize = KernelSession.receiveBufferSize(maxWrite: connection.maxWrite)
        let gate = SetupGate()
        for cpu in 0..<ring.queueCount {
            for _ in 0..<ring.threadsPerQueue {
                let queue = KernelRingQueue(id: UInt16(cpu), entries: 1, payloadSize: payloadSize, fuse: fuse)
                let started = ring.threads.start { [threads = ring.threads] in
                    if buildfs_pin_thread_to_cpu(Int32(cpu)) != 0 {
                        daemonLog("io_uring queue \(cpu): cannot pin its thread: \(String(cString: strerror(errno)))")
                    }
                    gate.report(queue.register())
                    guard gate.verdict() else { return }
                    queue.serve(handler: handler, threads: threads)
                }
                if !started { gate.report(SetupFailure(queue: UInt16(cpu), step: "starting its thread", code: EAGAIN)) }
            }
        }
        if let failure = gate.collect(reports: ring.queueCount * ring.threadsPerQueue, seconds: 10) {
            abandon(fuse: fuse)
            gate.decide(serve: false)
            ring.threads.joinAll()
            throw failure
        }
        gate.decide(serve: true)
        return ring
    }

    /// Ends the queue threads (waking them from their waits) and waits for
    /// them: after the session ended, or to end a busy mount.
    func stop() {
        threads.stop()
        threads.joinAll()
    }

    /// Makes the kernel give up io_uring for this session: a REGISTER it
    /// refuses (a queue number past its queues) turns it off, and requests
    /// go to /dev/fuse again. Needed when a queue failed before its
    /// REGISTER reached the kernel.
    private static func abandon(fuse: KernelChannel) {
        let entry = KernelRingEntry(payloadSize: 0, notifications: nil)
        var ring = buildfs_uring()
        guard buildfs_uring_setup(&ring, 1, 0) == 0 else {
            daemonLog("io_uring: cannot tell the kernel to fall back to /dev/fuse; requests may hang")
            return
        }
        defer { buildfs_uring_close(&ring) }
        var request = buildfs_fuse_uring_cmd_req()
        request.qid = .max
        _ = withUnsafeBytes(of: &request) { bytes in
            buildfs_uring_prepare_command(&ring, fuse.descriptor, UInt32(BUILDFS_FUSE_IO_URING_CMD_REGISTER),
                                          bytes.baseAddress, UInt32(bytes.count), entry.vectors, 2, 0)
        }
        // Refused inline: the completion is there when the submit returns.
        _ = buildfs_uring_submit_and_wait(&ring, 0)
    }
}

/// Where queue threads report how their registration went, and wait for
/// the verdict: all queues serve, or none does.
private final class SetupGate: Sendable {
    private let reports = Mutex<(count: Int, failure: KernelRing.SetupFailure?)>((0, nil))
    /// 0 while pending, 1 serve, 2 give up.
    private let decision = Atomic<Int>(0)

    func report(_ failure: KernelRing.SetupFailure?) {
        reports.withLock { state in
            state.count += 1
            if state.failure == nil { state.failure = failure }
        }
    }

    /// Waits (polling: this happens once per mount, for milliseconds) until
    /// `reports` queues have reported; the first failure, or a timeout.
    func collect(reports expected: Int, seconds: Int) -> KernelRing.SetupFailure? {
        for _ in 0..<(seconds * 1000) {
            let (count, failure) = reports.withLock { ($0.count, $0.failure) }
            if count >= expected { return failure }
            usleep(1000)
        }
        return KernelRing.SetupFailure(queue: 0, step: "waiting for every queue to register", code: ETIMEDOUT)
    }

    func decide(serve: Bool) { decision.store(serve ? 1 : 2, ordering: .releasing) }

    /// Waits for `decide`; whether to serve.
    func verdict() -> Bool {
        while decision.load(ordering: .acquiring) == 0 { usleep(1000) }
        return decision.load(ordering: .acquiring) == 1
    }
}
