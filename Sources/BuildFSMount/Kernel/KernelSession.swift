import BuildFSCore
import CFuseKernel
import Glibc
import Synchronization

/// The daemon's own request loop over one mounted session: answers INIT,
/// then reads requests on `threads` threads (each with its own cloned
/// descriptor and receive buffer, reused for every request) and hands each
/// to the handler, which replies through the sink it is given. Runs until
/// the session is unmounted. (Over io_uring, KernelRing serves the requests
/// and this loop, on one thread, what the kernel still sends here.)
///
/// The loop itself answers what is protocol rather than file system
/// (`route`): INIT (`start`), INTERRUPT (ENOSYS: the kernel then stops
/// sending them and waits for the request itself), DESTROY (ends the
/// loop), and opcodes this protocol version does not know (ENOSYS). FORGET
/// and BATCH_FORGET go to the handler but must get no reply.
final class KernelSession: Sendable {
    /// The handler of every other request. It replies exactly once (none
    /// for FORGET and BATCH_FORGET), through `sink`, before returning; the
    /// request's bytes are valid only until it returns.
    typealias Handler = @Sendable (_ request: KernelRequest, _ sink: any ReplySink) -> Void

    /// The session's descriptor, as the mount opened it.
    let channel: KernelChannel
    private let settled = Mutex<KernelConnection?>(nil)
    private let threads = LoopThreads()

    init(channel: KernelChannel) { self.channel = channel }

    /// The terms INIT settled; nil before `start`.
    var connection: KernelConnection? { settled.withLock { $0 } }

    /// Loop threads that have not ended yet.
    var runningThreads: Int { threads.runningCount }

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
        for threadChannel in channels {
            threads.start { [self] in loop(on: threadChannel, bufferSize: bufferSize, handler: handler) }
        }
        threads.joinAll()
    }

    /// Ends the loop threads even while the mount lives on (a lazy unmount
    /// of a busy mount does not end their reads), so that their descriptors
    /// close and, with the last one, the kernel aborts the connection.
    /// Requests being served finish first. Waits at most a few seconds.
    func stop() { threads.stop() }

    /// Answers what is protocol rather than file system and hands the rest
    /// to `handler`: the one decision both transports share. false after
    /// DESTROY (the loop ends).
    static func route(_ request: KernelRequest, to sink: any ReplySink, handler: Handler) -> Bool {
        switch request.opcode {
        case .interrupt:
            // ENOSYS turns interrupts off for the session: requests
            // run to their end (the daemon's are short).
            sink.reply(unique: request.unique, error: ENOSYS)
        case .destroy:
            // Unmounting (block-device mounts only): the other threads
            // end with ENODEV when the kernel drops the connection.
            sink.reply(unique: request.unique, error: 0)
            return false
        case .initialize:
            sink.reply(unique: request.unique, error: EPROTO)
        case nil:
            sink.reply(unique: request.unique, error: ENOSYS)
        default:
            handler(request, sink)
        }
        return true
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
                if threads.isStopping { return }
                continue
            } catch {
                daemonLog("FUSE loop thread stops: \(error)")
                return
            }
            if !Self.route(request, to: channel, handler: handler) { return }
        }
    }
}

/// A page-aligned buffer requests are read into (or, over io_uring,
/// written into by the kernel), owned by one thread.
final class ReceiveBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(size: Int) {
        bytes = .allocate(byteCount: size, alignment: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    deinit { bytes.deallocate() }
}
