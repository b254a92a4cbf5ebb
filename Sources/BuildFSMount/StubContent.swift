import BuildFSCore
import Synchronization

/// The bytes of a file the snapshot still owns (a stub), as the chunks that
/// hold them: found once per inode, then every read is a binary search.
final class StubContent: Sendable {
    let chunks: [ChunkRef]
    /// offsets[i] is where chunk i starts.
    let offsets: [UInt64]
    /// The rest of the file was asked for (a remote store fetches it in a
    /// few requests behind the first read's own block).
    private let restRequested = Atomic<Bool>(false)

    init(chunks: [ChunkRef]) {
        self.chunks = chunks
        var offsets: [UInt64] = []
        offsets.reserveCapacity(chunks.count)
        var position: UInt64 = 0
        for chunk in chunks {
            offsets.append(position)
            position += UInt64(chunk.length)
        }
        self.offsets = offsets
    }

    /// Up to `size` bytes at `offset`, from the chunks covering them.
    func read(_ lower: LowerSnapshot, size: Int, offset: UInt64) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        // The first chunk ending after offset.
        var low = 0, high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            if offsets[mid] + UInt64(chunks[mid].length) <= offset { low = mid + 1 } else { high = mid }
        }
        var index = low
        var position = offset
        while out.count < size, index < chunks.count {
            let bytes = try lower.chunk(chunks[index])
            // A load first: every read passes here, the exchange happens once.
            if !restRequested.load(ordering: .relaxed) && !restRequested.exchange(true, ordering: .relaxed) {
                lower.store.prefetch(chunks[(index + 1)...].map(\.id) + chunks[..<index].map(\.id))
            }
            let start = Int(position - offsets[index])
            let take = min(size - out.count, bytes.count - start)
            out.append(contentsOf: bytes[start..<start + take])
            position += UInt64(take)
            index += 1
        }
        lower.counters.bytesServed.add(UInt64(out.count), ordering: .relaxed)
        return out
    }
}
