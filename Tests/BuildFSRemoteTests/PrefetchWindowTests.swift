@testable import BuildFSRemote
import Testing

/// How much a mount's background prefetch keeps in flight: a round trip's
/// worth, measured from the quickest small answer.
struct PrefetchWindowTests {
    @Test func theQuickestAnswerIsKept() {
        let counters = TransferCounters()
        #expect(counters.fastestAnswer.load(ordering: .relaxed) == .max)
        counters.answered(after: .milliseconds(52))
        counters.answered(after: .milliseconds(50))
        counters.answered(after: .milliseconds(300)) // a slow one (a new connection, a busy server)
        #expect(counters.fastestAnswer.load(ordering: .relaxed) == 50_000)
    }

    @Test func theWindowGrowsWithTheRoundTripAndLeavesThreadsToReads() {
        // Not measured yet, or a near server: a quarter of the threads.
        #expect(BlockFetcher.backgroundLimit(threads: 16, roundTripMicros: .max) == 4)
        #expect(BlockFetcher.backgroundLimit(threads: 16, roundTripMicros: 300) == 4)
        #expect(BlockFetcher.backgroundLimit(threads: 16, roundTripMicros: 10_500) == 4)
        #expect(BlockFetcher.backgroundLimit(threads: 16, roundTripMicros: 20_000) == 8)
        // Far: all but two threads.
        #expect(BlockFetcher.backgroundLimit(threads: 16, roundTripMicros: 50_000) == 14)
        #expect(BlockFetcher.backgroundLimit(threads: 1, roundTripMicros: 50_000) == 1)
    }
}
