import BuildFSCore
import CFuseKernel
import Glibc
import Synchronization

/// The daemon's own request loop over one mounted session: answers INIT,
/// then reads requests on `threads` threads (each with its own cloned
/// descriptor and receive buffer, reused for every request) and hands each
/// to the handler, which replies through the channel it is given. Runs
/// until the session is unmounted.
///
/// The loop itself answers what is protocol rather than file system:
/// INIT (`start`), INTERRUPT (ENOSYS: the kernel then stops sending them
/// and waits for the request itself), DESTROY (ends the loop), and
/// opcodes this protocol version does not know (ENOSYS). FORGET and
/// BATCH_FORGET go to the handler but must get no reply.
final class KernelSession: Sendable {
    /// The handler of every other request. It replies exactly once (none
    /// for FORGET and BATCH_FORGET), through `channel`, before or after
    /// returning; the request's bytes are valid only until it returns.
    typealias Handler = @Sendable (_ request: KernelRequest, _ channel: KernelChannel) -> Void

    /// The session's descriptor, as the mount opened it.
    let channel: KernelChannel
    private let settled = Mutex<KernelConnection?>(nil)
    private let running = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let threads = Mutex<[pthread_t]>([])

    init(channel: KernelChannel) { self.channel = channel }

    /// The terms INIT settled; nil before `start`.
    var connection: KernelConnection? { settled.withLock { $0 } }

    /// Loop threads that have not ended yet.
    var runningThreads: Int { running.load(ordering: .acquiring) }

    /// Receive buffers: a WRITE's data plus its headers (the kernel refuses
    /// a read into less), and never below 128 KiB: other requests can be
    /// larger than a small max_write (SETXATTR carries up to 64 KiB).
    static func receiveBufferSize(maxWrite: UInt32) -> Int {
        max(Int(maxWrite), 128 << 10) + Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Waits for the kernel's INIT and answers it with `terms`. Throws when
    /// the kernel is refused (too old) or the session ends first.
    @discardableResult
    func start(_ terms: KernelInit) throws -> KernelConnection {
        let buffer = ReceiveBuffer(size: Self.receiveBufferSize(maxWrite: terms.maxWrite))
        while true {
            guard let request = try channel.receive(into: buffer.bytes) else {
                throw BuildFSError.usage("the FUSE session ended before INIT")
            }
            guard request.opcode == .initialize else {
                // The kernel sends nothing else before INIT is answered.
                channel.reply(unique: request.unique, error: EIO)
                continue
            }
            switch terms.negotiate(request) {
            case .accepted(let connection, let reply):
                channel.reply(unique: request.unique, reply)
                settled.withLock { $0 = connection }
                return connection
            case .newerMajor(let reply):
                channel.reply(unique: request.unique, reply)
            case .refused(let error, let reason):
                channel.reply(unique: request.unique, error: error)
                throw BuildFSError.usage("FUSE INIT refused: \(reason)")
            }
        }
    }

    /// Serves requests on `threads` threads until the session is unmounted
    /// (or DESTROY), and returns once every thread has ended.
    func serve(threads: Int, handler: @escaping Handler) throws {
        try serve(on: (0..<max(1, threads)).map { _ in try channel.clone() }, handler: handler)
    }

    /// Serves on `channels`, one thread each (tests pass a socket here).
    func serve(on channels: [KernelChannel], handler: @escaping Handler) throws {
        guard let connection else { throw BuildFSError.usage("serve() before start(): INIT not answered") }
        let bufferSize = Self.receiveBufferSize(maxWrite: connection.maxWrite)
        Self.installWakeUpSignal()
        var started: [pthread_t] = []
        for threadChannel in channels {
            running.add(1, ordering: .releasing)
            let thread = spawnThread { [self] in
                defer { running.subtract(1, ordering: .releasing) }
                loop(on: threadChannel, bufferSize: bufferSize, handler: handler)
            }
            if let thread { started.append(thread) } else { running.subtract(1, ordering: .releasing) }
        }
        threads.withLock { $0 = started }
        for thread in started { pthread_join(thread, nil) }
    }

    /// Ends the loop threads even while the mount lives on (a lazy unmount
    /// of a busy mount does not end their reads): each is woken from its
    /// read by `wakeUpSignal` until it has ended, so that its descriptor
    /// closes and, with the last one, the kernel aborts the connection.
    /// Requests being served finish first. Waits at most a few seconds.
    func stop() {
        stopping.store(true, ordering: .releasing)
        let loopThreads = threads.withLock { $0 }
        // A thread between its check of `stopping` and its read misses a
        // signal: signal again until all have ended.
        for _ in 0..<500 where runningThreads > 0 {
            for thread in loopThreads { pthread_kill(thread, Self.wakeUpSignal) }
            usleep(10_000)
        }
    }

    /// The signal that interrupts a loop thread's read (SIGUSR1, handled
    /// by doing nothing and without SA_RESTART, so the read fails EINTR).
    static let wakeUpSignal = SIGUSR1

    private static func installWakeUpSignal() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(wakeUpSignal, &action, nil)
    }

    /// One thread's loop.
    private func loop(on channel: KernelChannel, bufferSize: Int, handler: Handler) {
        let buffer = ReceiveBuffer(size: bufferSize)
        while true {
            let request: KernelRequest
            do {
                guard let next = try channel.receive(into: buffer.bytes) else { return }
                request = next
            } catch where error.code == EINTR {
                if stopping.load(ordering: .acquiring) { return }
                continue
            } catch {
                daemonLog("FUSE loop thread stops: \(error)")
                return
            }
            switch request.opcode {
            case .interrupt:
                // ENOSYS turns interrupts off for the session: requests
                // run to their end (the daemon's are short).
                channel.reply(unique: request.unique, error: ENOSYS)
            case .destroy:
                // Unmounting (block-device mounts only): the other threads
                // end with ENODEV when the kernel drops the connection.
                channel.reply(unique: request.unique, error: 0)
                return
            case .initialize:
                channel.reply(unique: request.unique, error: EPROTO)
            case nil:
                channel.reply(unique: request.unique, error: ENOSYS)
            default:
                handler(request, channel)
            }
        }
    }
}

/// A page-aligned buffer requests are read into, owned by one thread.
private final class ReceiveBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(size: Int) {
        bytes = .allocate(byteCount: size, alignment: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    deinit { bytes.deallocate() }
}

/// Starts a joinable thread running `body`; nil when the system has no
/// more threads to give.
private func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t? {
    final class Start {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let start = Unmanaged.passRetained(Start(body)).toOpaque()
    let created = pthread_create(&thread, nil, { context in
        Unmanaged<Start>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, start)
    guard created == 0 else {
        Unmanaged<Start>.fromOpaque(start).release()
        daemonLog("cannot start a FUSE loop thread: \(String(cString: strerror(created)))")
        return nil
    }
    return thread
}
