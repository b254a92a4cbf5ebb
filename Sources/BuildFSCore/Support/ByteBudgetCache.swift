import Synchronization

/// A least-recently-inserted (FIFO) cache bounded by the bytes of its
/// values, for content-addressed things that never change, so nothing is
/// ever invalidated: decoded blocks, trees and chunks.
public final class ByteBudgetCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct State {
        var values: [Key: (value: Value, cost: Int)] = [:]
        var order: [Key] = []
        var head = 0
        var cost = 0
    }

    private let state = Mutex(State())
    private let budget: Int

    public init(budget: Int) { self.budget = budget }

    public func get(_ key: Key) -> Value? { state.withLock { $0.values[key]?.value } }

    public func insert(_ key: Key, _ value: Value, cost: Int) {
        state.withLock { state in
            guard state.values[key] == nil else { return }
            state.values[key] = (value, cost)
            state.order.append(key)
            state.cost += cost
            while state.cost > budget, state.head < state.order.count {
                let old = state.order[state.head]
                state.head += 1
                if let removed = state.values.removeValue(forKey: old) { state.cost -= removed.cost }
            }
            if state.head > 4096 && state.head * 2 > state.order.count {
                state.order.removeFirst(state.head)
                state.head = 0
            }
        }
    }
}
