import Foundation

/// Runs blocking transfers on a fixed set of threads, so that many requests
/// are in flight while the callers (import workers, one export) go on.
/// `submit` blocks while the backlog is full, which bounds the memory held
/// by queued uploads. After the first failure, queued and later jobs are
/// skipped; `finish` waits for the threads and rethrows that failure.
///
/// Threads, not Dispatch: `concurrentPerform` runs only as many jobs at once
/// as there are cores, and each job here mostly waits on the network.
final class TransferQueue: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var jobs: [@Sendable () throws -> Void] = []
    private var running = 0
    private var threads = 0
    private var closed = false
    private var failure: (any Error)?

    private let maxThreads: Int
    private let maxBacklog: Int

    init(threads: Int) {
        maxThreads = max(1, threads)
        maxBacklog = 2 * maxThreads
    }

    /// Queues `job`; throws the first failure of an earlier job instead.
    func submit(_ job: @escaping @Sendable () throws -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        while jobs.count >= maxBacklog && failure == nil { condition.wait() }
        if let failure { throw failure }
        precondition(!closed, "submit after finish")
        jobs.append(job)
        if threads < maxThreads && threads - running < jobs.count {
            threads += 1
            let thread = Thread { [self] in work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
        // Submitters wait on the same condition: wake everyone, so a worker
        // is surely among the woken.
        condition.broadcast()
    }

    /// Waits until every queued job ran (or was skipped after a failure);
    /// rethrows the first failure.
    func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while threads > 0 { condition.wait() }
        if let failure { throw failure }
    }

    /// Drops the backlog and waits for jobs in flight.
    func cancel() {
        condition.lock()
        jobs.removeAll()
        if failure == nil { failure = CancellationError() }
        condition.unlock()
        try? finish()
    }

    private func work() {
        condition.lock()
        while true {
            if failure != nil { jobs.removeAll() }
            if jobs.isEmpty {
                if closed { break }
                condition.wait()
                continue
            }
            let job = jobs.removeFirst()
            running += 1
            condition.broadcast()
            condition.unlock()
            var jobFailure: (any Error)?
            do { try job() } catch { jobFailure = error }
            condition.lock()
            running -= 1
            if let jobFailure, failure == nil { failure = jobFailure }
            // A submitter waiting for room must see a failure too.
            condition.broadcast()
        }
        threads -= 1
        condition.broadcast()
        condition.unlock()
    }
}
