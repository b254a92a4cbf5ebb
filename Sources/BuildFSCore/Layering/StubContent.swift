import Synchronization

/// The bytes of a file the snapshot still owns (a stub), as the chunks that
/// hold them: found once per inode, then every read is a binary search.
public final class StubContent: Sendable {
    let chunks: [ChunkRef]
    /// offsets[i] is where chunk i starts.
    let offsets: [UInt64]
    /// The file's length.
    public let size: UInt64
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
        size = position
    }

    /// How far `decodeAhead` got: the chunks before this offset are decoded
    /// or being decoded.
    private let decodedAhead = Atomic<UInt64>(0)

    /// Decodes the chunks covering [offset, offset + length) into the
    /// snapshot's chunk cache that no earlier call took: what a reader
    /// reading on from `offset` will ask for next. Failures are left to
    /// that read, which reports them.
    public func decodeAhead(_ snapshot: SnapshotLayer, from offset: UInt64, length: UInt64) {
        let end = min(size, offset + length)
        var index = firstChunk(endingAfter: max(offset, decodedAhead.load(ordering: .relaxed)))
        while index < chunks.count, offsets[index] < end {
            let chunkEnd = offsets[index] + UInt64(chunks[index].length)
            // Taken by another call meanwhile: it goes on from there.
            guard decodedAhead.max(chunkEnd, ordering: .relaxed).oldValue < chunkEnd else { return }
            _ = try? snapshot.chunk(chunks[index])
            index += 1
        }
    }

    /// The index of the first chunk ending after `offset`.
    private func firstChunk(endingAfter offset: UInt64) -> Int {
        var low = 0, high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            if offsets[mid] + UInt64(chunks[mid].length) <= offset { low = mid + 1 } else { high = mid }
        }
        return low
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
        var index = firstChunk(endingAfter: offset)
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
