import Synchronization

/// The bytes of a file the snapshot still owns (a stub), as the chunks that
/// hold them: found once per inode, then every read is a binary search.
public final class StubContent: Sendable {
    let chunks: [ChunkRef]
    /// offsets[i] is where chunk i starts.
    let offsets: [UInt64]
    /// The rest of the file was asked for (a remote store fetches it in a
    /// few requests behind the first read's own block).
    private let restRequested = Atomic<Bool>(false)

    public init(chunks: [ChunkRef]) {
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

    /// Part of a chunk a read returns.
    public struct Piece {
        public var chunk: [UInt8]
        public var range: Range<Int>
    }

    /// Up to `size` bytes at `offset`, as the pieces of the chunks covering
    /// them (replied as they are: no copy into one buffer).
    public func read(_ snapshot: SnapshotLayer, size: Int, offset: UInt64) throws -> [Piece] {
        var pieces: [Piece] = []
        var served = 0
        // The first chunk ending after offset.
        var low = 0, high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            if offsets[mid] + UInt64(chunks[mid].length) <= offset { low = mid + 1 } else { high = mid }
        }
        var index = low
        var position = offset
        while served < size, index < chunks.count {
            let bytes = try snapshot.chunk(chunks[index])
            // A load first: every read passes here, the exchange happens once.
            if !restRequested.load(ordering: .relaxed) && !restRequested.exchange(true, ordering: .relaxed) {
                snapshot.store.prefetch(chunks[(index + 1)...].map(\.id) + chunks[..<index].map(\.id))
            }
            let start = Int(position - offsets[index])
            let take = min(size - served, bytes.count - start)
            pieces.append(Piece(chunk: bytes, range: start..<start + take))
            served += take
            position += UInt64(take)
            index += 1
        }
        snapshot.counters.bytesServed.add(UInt64(served), ordering: .relaxed)
        return pieces
    }
}
