@testable import BuildFSCore
import Testing

@Suite struct ByteBudgetCacheTests {
    @Test func evictsTheOldestInsertedUntilWithinBudget() {
        let cache = ByteBudgetCache<Int, String>(budget: 10)
        for key in 0..<4 { cache.insert(key, "v\(key)", cost: 3) }
        #expect(cache.get(0) == nil)
        #expect((1..<4).allSatisfy { cache.get($0) == "v\($0)" })
        _ = cache.get(1)
        cache.insert(4, "v4", cost: 4)
        #expect(cache.get(1) == nil, "FIFO: reading 1 did not keep it")
        #expect(cache.get(2) == "v2" && cache.get(3) == "v3" && cache.get(4) == "v4")
    }

    @Test func keepsTheFirstValueOfAKeyAndDropsWhatIsOverBudgetAlone() {
        let cache = ByteBudgetCache<Int, String>(budget: 10)
        cache.insert(1, "first", cost: 2)
        cache.insert(1, "second", cost: 2)
        #expect(cache.get(1) == "first")
        cache.insert(2, "huge", cost: 11)
        #expect(cache.get(2) == nil && cache.get(1) == nil)
    }

    @Test func staysBoundedThroughManyInsertions() {
        let cache = ByteBudgetCache<Int, Int>(budget: 1000)
        for key in 0..<20_000 { cache.insert(key, key, cost: 10) }
        #expect((19_900..<20_000).allSatisfy { cache.get($0) == $0 })
        #expect(cache.get(19_899) == nil)
    }
}
