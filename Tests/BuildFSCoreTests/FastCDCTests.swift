import BuildFSCore
import Testing
import TestSupport

@Suite struct FastCDCTests {
    @Test func chunkSizesStayWithinBounds() {
        var random = SeededRandom(seed: 1)
        let data = random.bytes(8 * 1024 * 1024)
        let lengths = data.withUnsafeBytes { FastCDC.chunkLengths($0) }
        #expect(lengths.reduce(0, +) == data.count)
        for length in lengths.dropLast() {
            #expect(length >= FastCDC.minSize && length <= FastCDC.maxSize)
        }
        // Normalized chunking keeps the mean near the target average.
        let mean = data.count / lengths.count
        #expect(mean > FastCDC.averageSize / 2 && mean < FastCDC.averageSize * 2, "mean \(mean)")
    }

    @Test func smallInputsAreOneChunk() {
        let data = [UInt8](repeating: 7, count: FastCDC.minSize)
        #expect(data.withUnsafeBytes { FastCDC.chunkLengths($0) } == [FastCDC.minSize])
        #expect([UInt8]().withUnsafeBytes { FastCDC.chunkLengths($0) } == [])
    }

    @Test func uniformInputCutsAtMaximum() {
        // Zeros never satisfy the mask: every cut is forced at maxSize.
        let data = [UInt8](repeating: 0, count: 3 * FastCDC.maxSize + 5)
        #expect(data.withUnsafeBytes { FastCDC.chunkLengths($0) } == [FastCDC.maxSize, FastCDC.maxSize, FastCDC.maxSize, 5])
    }

    @Test func insertionNearStartChangesOnlyNearbyChunks() {
        var random = SeededRandom(seed: 42)
        let original = random.bytes(16 * 1024 * 1024)
        var edited = original
        edited.insert(contentsOf: random.bytes(100), at: 5000)

        func chunkIDs(_ data: [UInt8]) -> [ObjectID] {
            data.withUnsafeBytes { buffer in
                var offset = 0
                return FastCDC.chunkLengths(buffer).map { length in
                    defer { offset += length }
                    return ObjectID.hashing(UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + length]))
                }
            }
        }
        let before = chunkIDs(original), after = chunkIDs(edited)
        let changed = after.filter { !Set(before).contains($0) }
        #expect(before.count > 100)
        #expect(changed.count <= 2, "\(changed.count) of \(after.count) chunks changed")
        // Everything after the first changed chunks is identical.
        #expect(Array(before.suffix(before.count - 2)) == Array(after.suffix(before.count - 2)))
    }
}
