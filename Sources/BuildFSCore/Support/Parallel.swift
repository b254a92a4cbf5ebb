import Dispatch
import Glibc
import Synchronization

public enum Parallel {
    /// Runs `body(i)` for every `i` in `0..<count` on up to `workers` threads,
    /// starting indexes in order (put the biggest jobs first). After the
    /// first error no new index starts; that error is rethrown.
    public static func forEach(_ count: Int, workers: Int, _ body: @Sendable (Int) throws -> Void) throws {
        if count == 0 { return }
        if workers <= 1 || count == 1 {
            for i in 0..<count { try body(i) }
            return
        }
        let next = Atomic<Int>(0)
        let firstError = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: min(workers, count)) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                guard i < count, firstError.withLock({ $0 == nil }) else { return }
                do {
                    try body(i)
                } catch {
                    firstError.withLock { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
        if let error = firstError.withLock({ $0 }) { throw error }
    }

    /// Cores available to this process.
    public static var defaultWorkers: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
