import CFuseKernel
import CIoUring
import Glibc

/// One thread's part of a queue of FUSE over io_uring: the io_uring of a
/// thread pinned to CPU `id` (whose processes' requests the kernel puts in
/// this queue), with `entries` registered with the kernel. The thread
/// waits for an entry to complete (a request is in it), serves the request,
/// and commits the reply with COMMIT_AND_FETCH, which also gives the entry
/// back for the next request. Several threads may serve one queue, each
/// with its own ring and entries (KernelRing).
///
/// Used by its thread only (hence @unchecked Sendable): `register` then
/// `serve`. Closing the ring (deinit) makes the kernel cancel what is
/// still registered.
final class KernelRingQueue: @unchecked Sendable {
    /// The queue's number: the CPU it serves.
    let id: UInt16
    private let fuseDescriptor: Int32
    private let entries: [KernelRingEntry]
    /// Where each request is made contiguous for KernelRequest.
    private let scratch: ReceiveBuffer
    private let ring = UnsafeMutablePointer<buildfs_uring>.allocate(capacity: 1)
    /// Completions taken while registering (a request can come at once).
    private var early: [(entry: Int, result: Int32)] = []
    /// Each entry's last command and its commit id: what is sent again when
    /// the kernel says EAGAIN or EINTR.
    private var lastCommand: [(command: Int32, commitID: UInt64)]

    /// `fuse` is the session's /dev/fuse channel: the commands name its
    /// descriptor, and notifications (which the ring does not carry) go
    /// through it.
    init(id: UInt16, entries count: Int, payloadSize: Int, fuse: KernelChannel) {
        self.id = id
        fuseDescriptor = fuse.descriptor
        entries = (0..<count).map { _ in KernelRingEntry(payloadSize: payloadSize, notifications: fuse) }
        scratch = ReceiveBuffer(size: KernelRingEntry.requestSize(payloadSize: payloadSize))
        lastCommand = Array(repeating: (command: BUILDFS_FUSE_IO_URING_CMD_REGISTER, commitID: UInt64(0)),
                            count: count)
        ring.initialize(to: buildfs_uring())
        ring.pointee.fd = -1
    }

    deinit {
        buildfs_uring_close(ring)
        ring.deallocate()
    }

    /// Makes this thread's io_uring and registers every entry: nil, or what
    /// failed. A REGISTER the kernel refuses completes at once; one it
    /// takes completes only when a request comes.
    func register() -> KernelRing.SetupFailure? {
        let made = buildfs_uring_setup(ring, UInt32(entries.count), BUILDFS_URING_SERVING_FLAGS)
        guard made == 0 else { return KernelRing.SetupFailure(queue: id, step: "io_uring_setup", code: -made) }
        for index in entries.indices { prepare(BUILDFS_FUSE_IO_URING_CMD_REGISTER, entry: index, commitID: 0) }
        let submitted = buildfs_uring_submit_and_wait(ring, 0)
        guard submitted >= 0 else { return KernelRing.SetupFailure(queue: id, step: "io_uring_enter", code: -submitted) }
        takeCompletions(into: &early)
        if let refused = early.first(where: { $0.result < 0 && $0.result != -EAGAIN && $0.result != -EINTR }) {
            return KernelRing.SetupFailure(queue: id, step: "REGISTER", code: -refused.result)
        }
        return nil
    }

    /// Serves requests until the kernel has ended every entry (the session
    /// is unmounted or aborted) or `threads` is stopping.
    func serve(handler: KernelSession.Handler, threads: LoopThreads) {
        var live = entries.count
        var registeredAgain = Array(repeating: 0, count: entries.count)
        var completions = early
        early = []
        while true {
            for (index, result) in completions {
                switch -result {
                case ...0:
                    serve(entry: index, handler: handler)
                case EAGAIN, EINTR:
                    prepare(lastCommand[index].command, entry: index, commitID: lastCommand[index].commitID)
                case ENOTCONN, ECONNABORTED, ECANCELED, ENODEV:
                    // The session ended, or the ring is going away.
                    live -= 1
                default:
                    // An entry the kernel dropped (a commit it could not
                    // match): registered again, a few times, so that this
                    // CPU's requests still have somewhere to go.
                    daemonLog("io_uring queue \(id): an entry ended with \(String(cString: strerror(-result)))")
                    registeredAgain[index] += 1
                    if registeredAgain[index] <= 3 {
                        prepare(BUILDFS_FUSE_IO_URING_CMD_REGISTER, entry: index, commitID: 0)
                    } else {
                        live -= 1
                    }
                }
            }
            completions.removeAll(keepingCapacity: true)
            if live == 0 { return }
            let waited = buildfs_uring_submit_and_wait(ring, 1)
            if waited < 0 {
                if -waited == EINTR || -waited == EAGAIN || -waited == EBUSY {
                    if threads.isStopping { return }
                } else {
                    daemonLog("io_uring queue \(id) stops: \(String(cString: strerror(-waited)))")
                    return
                }
            }
            takeCompletions(into: &completions)
        }
    }

    /// One request: made contiguous, routed as over /dev/fuse, its reply
    /// left in the entry and committed with the next submit.
    private func serve(entry index: Int, handler: KernelSession.Handler) {
        let entry = entries[index]
        do {
            let request = try entry.request(assemblingInto: scratch.bytes)
            _ = KernelSession.route(request, to: entry, handler: handler)
        } catch {
            daemonLog("malformed FUSE request refused: \(error.reason)")
            entry.reply(unique: error.unique ?? entry.bookkeeping.commit_id, error: EINVAL)
        }
        if !entry.replied {
            daemonLog("FUSE request \(entry.bookkeeping.commit_id) got no reply over io_uring: EIO")
            entry.reply(unique: entry.bookkeeping.commit_id, error: EIO)
        }
        prepare(BUILDFS_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, entry: index, commitID: entry.bookkeeping.commit_id)
    }

    /// Queues `command` for entry `index` (its user_data), submitted by the
    /// next wait. The submission queue has a slot per entry, and an entry
    /// has one command at a time: it cannot be full, but if it were, what
    /// is queued is submitted first.
    private func prepare(_ command: Int32, entry index: Int, commitID: UInt64) {
        lastCommand[index] = (command, commitID)
        var request = buildfs_fuse_uring_cmd_req()
        request.qid = id
        request.commit_id = commitID
        while true {
            let queued = withUnsafeBytes(of: &request) { bytes in
                buildfs_uring_prepare_command(ring, fuseDescriptor, UInt32(command), bytes.baseAddress,
                                              UInt32(bytes.count), entries[index].vectors, 2, UInt64(index))
            }
            if queued != -EBUSY { return }
            _ = buildfs_uring_submit_and_wait(ring, 0)
        }
    }

    private func takeCompletions(into completions: inout [(entry: Int, result: Int32)]) {
        var userData: UInt64 = 0
        var result: Int32 = 0
        while buildfs_uring_next_completion(ring, &userData, &result) != 0 {
            completions.append((Int(userData), result))
        }
    }
}
