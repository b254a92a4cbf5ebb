import Synchronization

/// Decoded blocks that hold several small objects, so that reading the
/// neighbours of a small file does not decompress the same block again.
/// Evicts the oldest entry (FIFO): reads of one block come close together.
final class BlockCache: Sendable {
    struct Key: Hashable { var pack: String; var offset: UInt64 }

    private struct State {
        var blocks: [Key: [UInt8]] = [:]
        var order: [Key] = []
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: Key) -> [UInt8]? { state.withLock { $0.blocks[key] } }

    func insert(_ key: Key, _ block: [UInt8]) {
        state.withLock { state in
            if state.blocks.updateValue(block, forKey: key) != nil { return }
            state.order.append(key)
            if state.order.count > capacity {
                state.blocks[state.order.removeFirst()] = nil
            }
        }
    }
}
