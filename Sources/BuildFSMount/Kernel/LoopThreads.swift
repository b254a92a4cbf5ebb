import Glibc
import Synchronization

/// The threads of a request loop (KernelSession's on /dev/fuse,
/// KernelRing's queues): started, counted while they run, woken to stop,
/// joined.
final class LoopThreads: Sendable {
    /// Every thread started, and how many of them some `joinAll` took.
    private let threads = Mutex<(all: [pthread_t], joined: Int)>(([], 0))
    private let running = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)

    /// Threads that have not ended yet.
    var runningCount: Int { running.load(ordering: .acquiring) }

    /// Set by `stop`: a thread woken from its wait by `wakeUpSignal` ends.
    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Starts a joinable thread running `body`; false when the system has
    /// no more threads to give (logged).
    @discardableResult
    func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        Self.installWakeUpSignal()
        running.add(1, ordering: .releasing)
        guard let thread = spawnThread({ [self] in
            defer { running.subtract(1, ordering: .releasing) }
            body()
        }) else {
            running.subtract(1, ordering: .releasing)
            return false
        }
        threads.withLock { $0.all.append(thread) }
        return true
    }

    /// Waits until every thread started so far has ended (each thread is
    /// joined once, whoever calls this).
    func joinAll() {
        let unjoined = threads.withLock { state in
            defer { state.joined = state.all.count }
            return state.all[state.joined...]
        }
        for thread in unjoined { pthread_join(thread, nil) }
    }

    /// Ends the threads: each is woken from its wait (a read of /dev/fuse,
    /// an io_uring wait) by `wakeUpSignal` until it has ended. Requests
    /// being served finish first. Waits at most a few seconds.
    func stop() {
        stopping.store(true, ordering: .releasing)
        let started = threads.withLock { $0.all }
        // A thread between its check of `isStopping` and its wait misses a
        // signal: signal again every 10 ms until all have ended (5 s at most).
        var attempts = 0
        while runningCount > 0 && attempts < 500 {
            for thread in started { pthread_kill(thread, Self.wakeUpSignal) }
            usleep(10_000)
            attempts += 1
        }
    }

    /// The signal that interrupts a loop thread's wait (SIGUSR1, handled
    /// by doing nothing and without SA_RESTART, so the wait fails EINTR).
    static let wakeUpSignal = SIGUSR1

    private static func installWakeUpSignal() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(wakeUpSignal, &action, nil)
    }
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
