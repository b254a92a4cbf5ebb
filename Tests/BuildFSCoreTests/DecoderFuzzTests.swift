@testable import BuildFSCore
import Testing
import TestSupport

/// Every decoder of bytes from a store, fed mutations of valid encodings:
/// it throws, or returns a value that encodes and decodes back to itself.
/// Never a crash. Seeded, and at most 2 s each.
@Suite struct DecoderFuzzTests {
    static let id = ObjectID.hashing(Array("fuzz".utf8))

    static func someID(_ random: inout SeededRandom) -> ObjectID { ObjectID.hashing(random.bytes(8)) }

    static func name(_ random: inout SeededRandom, _ n: Int) -> [UInt8] {
        Array("n\(n)-".utf8) + random.bytes(Int(random.next() % 6)).map { 0x61 + $0 % 26 }
    }

    static let trees: [[UInt8]] = {
        var random = SeededRandom(seed: 1)
        return (0..<6).map { t in
            let entries = (0..<(t * 3)).map { n -> TreeEntry in
                let content: EntryContent
                switch n % 3 {
                case 0:
                    let chunks = (0..<(n % 4)).map { _ in ChunkRef(id: someID(&random), length: UInt32(1 + random.next() % 70_000)) }
                    content = .file(size: chunks.reduce(0) { $0 + UInt64($1.length) }, chunks: chunks, linkGroup: random.next() % 3)
                case 1: content = .directory(someID(&random))
                default: content = .symlink(target: Array("../t\(n)".utf8))
                }
                return TreeEntry(name: name(&random, n), mode: UInt32(random.next() % 0o7777), uid: UInt32(random.next() % 70_000),
                                 gid: 100, mtime: Timestamp(seconds: Int64(bitPattern: random.next()) >> 20, nanoseconds: 999_999_999),
                                 content: content)
            }
            return Tree(entries: entries).encode()
        }
    }()

    @Test func tree() throws {
        try fuzz(Self.trees, seed: 11) { bytes throws in
            guard let tree = try? Tree.decode(bytes, id: Self.id) else { return }
            #expect(try Tree.decode(tree.encode(), id: Self.id) == tree)
        }
    }

    static let statIndexes: [[UInt8]] = {
        var random = SeededRandom(seed: 2)
        return (0..<4).map { n in
            var index = StatIndex()
            for i in 0..<(n * 4) {
                index.records[name(&random, i) + [0x2F] + name(&random, i)] = StatIndex.Record(
                    device: random.next() >> UInt64(i), inode: random.next() % 1_000_000,
                    ctime: Timestamp(seconds: Int64(bitPattern: random.next()) >> 3, nanoseconds: UInt32(random.next() % 1_000_000_000)))
            }
            return index.encode()
        }
    }()

    @Test func statIndex() throws {
        try fuzz(Self.statIndexes, seed: 12) { bytes throws in
            guard let index = try? StatIndex.decode(bytes, id: Self.id) else { return }
            #expect(try StatIndex.decode(index.encode(), id: Self.id).records == index.records)
        }
    }

    static let readTraces: [[UInt8]] = {
        var random = SeededRandom(seed: 3)
        return (0..<4).map { n in ReadTrace.encode((0..<(n * 3)).map { _ in someID(&random) }) }
    }()

    @Test func readTrace() throws {
        try fuzz(Self.readTraces, seed: 13) { bytes throws in
            guard let ids = try? ReadTrace.decode(bytes, id: Self.id) else { return }
            #expect(try ReadTrace.decode(ReadTrace.encode(ids), id: Self.id) == ids)
        }
    }

    static let packIndexes: [[UInt8]] = {
        var random = SeededRandom(seed: 4)
        return (0..<4).map { n in
            PackIndex.encode((0..<(n * 3)).map { i in
                (someID(&random), PackSlot(blockOffset: random.next() >> UInt64(i * 5), blockLength: UInt32(16 + random.next() % 2_000_000),
                                           offsetInBlock: UInt32(random.next() % 1_000_000), length: UInt32(random.next() % 1_000_000)))
            })
        }
    }()

    /// Half the mutations get a fresh checksum, so the fields behind it are
    /// fuzzed too.
    static func withChecksum(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= ObjectID.byteCount else { return bytes }
        let body = Array(bytes.dropLast(ObjectID.byteCount))
        return body + ObjectID.hashing(body).bytes
    }

    static func key(_ entry: (ObjectID, PackSlot)) -> [UInt8] {
        entry.0.bytes + [entry.1.blockOffset, UInt64(entry.1.blockLength), UInt64(entry.1.offsetInBlock), UInt64(entry.1.length)]
            .flatMap { withUnsafeBytes(of: $0) { Array($0) } }
    }

    @Test func packIndex() throws {
        try fuzz(Self.packIndexes, seed: 14, fixUp: Self.withChecksum) { bytes throws in
            guard let entries = try? PackIndex.decode(bytes, name: "fuzz.idx") else { return }
            let again = try PackIndex.decode(PackIndex.encode(entries), name: "fuzz.idx")
            #expect(again.map(Self.key) == entries.sorted { $0.0 < $1.0 }.map(Self.key))
        }
    }

    static let blocks: [[UInt8]] = {
        var random = SeededRandom(seed: 5)
        let compressor = ZstdCompressor(level: 3)
        let contents = [[], random.bytes(100), Array(String(repeating: "int main(void) { return 0; }\n", count: 40).utf8),
                        Array(repeating: 7, count: 5000)]
        return contents.map { content in content.withUnsafeBytes { BlockCodec.encode($0, compressor: compressor) } }
    }()

    @Test func blockCodec() throws {
        let compressor = ZstdCompressor(level: 1)
        let decompressor = ZstdDecompressor()
        func decode(_ bytes: [UInt8]) throws -> [UInt8] {
            try bytes.withUnsafeBytes { try BlockCodec.decode($0, objectID: Self.id, decompressor: decompressor) }
        }
        try fuzz(Self.blocks, seed: 15) { bytes throws in
            guard let content = try? decode(bytes) else { return }
            #expect(try decode(content.withUnsafeBytes { BlockCodec.encode($0, compressor: compressor) }) == content)
        }
    }

    static let refs: [[UInt8]] = {
        var random = SeededRandom(seed: 6)
        var full = SnapshotRef(key: "ci-linux/gcc-12_main", root: someID(&random), created: 1_700_000_000.25, logicalBytes: 1 << 40,
                               addedBytes: 12_345, files: 3, directories: 2, symlinks: 1, statIndex: someID(&random),
                               source: SourceDirectory(path: "/work/build", device: 2049, inode: 77), parent: "ci-linux/gcc-12_prev")
        full.packMap = someID(&random).hex
        full.readTrace = someID(&random).hex
        let bare = SnapshotRef(key: "k", root: someID(&random), created: 0, logicalBytes: 0, addedBytes: 0,
                               files: 0, directories: 0, symlinks: 0, statIndex: nil, source: nil, parent: nil)
        return [try! full.encoded(), try! bare.encoded()]
    }()

    @Test func snapshotRef() throws {
        try fuzz(Self.refs, seed: 16) { bytes throws in
            guard var ref = try? SnapshotRef.decode(bytes) else { return }
            ref.lastUsed = 0
            #expect(try SnapshotRef.decode(try ref.encoded()) == ref)
        }
    }

    /// The stub mark an upper directory carries (UpperLayout): root-only
    /// trusted.* attributes, but an upper directory may come from anywhere.
    @Test func stubReference() throws {
        var random = SeededRandom(seed: 19)
        let valid = (0..<4).map { n in StubReference(tree: Self.someID(&random), name: Self.name(&random, n)).encode() }
        try fuzz(valid, seed: 19) { bytes throws in
            guard let stub = StubReference.decode(bytes) else { return }
            #expect(StubReference.decode(stub.encode()) == stub)
            #expect(stub.encode() == bytes)
        }
    }
}
