@testable import BuildFSRemote
import Foundation
import Synchronization
import Testing

/// The thread pool uploads and prefetches run on: bounded, and a failure
/// stops it without leaving a submitter or `finish` waiting forever.
@Suite struct TransferQueueTests {
    struct Boom: Error {}

    @Test func everyJobRunsAndAtMostThatManyAtOnce() throws {
        let queue = TransferQueue(threads: 4)
        let done = Atomic<Int>(0), running = Atomic<Int>(0), peak = Atomic<Int>(0)
        for _ in 0..<200 {
            try queue.submit {
                let now = running.add(1, ordering: .relaxed).newValue
                peak.max(now, ordering: .relaxed)
                usleep(200)
                running.subtract(1, ordering: .relaxed)
                done.add(1, ordering: .relaxed)
            }
        }
        try queue.finish()
        #expect(done.load(ordering: .relaxed) == 200)
        #expect(peak.load(ordering: .relaxed) <= 4 && peak.load(ordering: .relaxed) >= 2)
    }

    @Test(.timeLimit(.minutes(1))) func aFailureWithAFullBacklogReachesTheSubmitter() {
        let queue = TransferQueue(threads: 2)
        let ran = Atomic<Int>(0)
        var submitError: (any Error)?
        do {
            for n in 0..<10_000 {
                try queue.submit {
                    ran.add(1, ordering: .relaxed)
                    usleep(100)
                    if n == 3 { throw Boom() }
                }
            }
        } catch {
            submitError = error
        }
        #expect(submitError is Boom)
        #expect(throws: Boom.self) { try queue.finish() }
        #expect(ran.load(ordering: .relaxed) < 100, "jobs after the failure were skipped")
    }
}
