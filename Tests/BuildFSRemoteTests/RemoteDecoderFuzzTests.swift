import BuildFSCore
@testable import BuildFSRemote
import Testing
import TestSupport

/// The remote store's decoders of server bytes, fed mutations of valid
/// encodings (see DecoderFuzzTests): they throw or return nil, or return a
/// value that encodes and decodes back to itself. Never a crash.
@Suite struct RemoteDecoderFuzzTests {
    static let id = ObjectID.hashing(Array("fuzz".utf8))

    static let packMaps: [[UInt8]] = {
        var random = SeededRandom(seed: 21)
        return (0..<4).map { n in
            var map = PackMap()
            map.packs = (0..<n).map { _ in PackMap.Pack(digest: ObjectID.hashing(random.bytes(8)), size: 1 << 30) }
            map.entries = (0..<(n * 4)).map { i in
                PackMap.Entry(id: ObjectID.hashing(random.bytes(8)), pack: i % max(n, 1),
                              slot: PackSlot(blockOffset: random.next() % (1 << 29), blockLength: UInt32(16 + random.next() % 1_000_000),
                                             offsetInBlock: UInt32(random.next() % 1000), length: UInt32(random.next() % 100_000)),
                              isTree: i % 3 == 0)
            }
            if n == 0 { map.entries = [] }
            return map.encode()
        }
    }()

    static func key(_ entry: PackMap.Entry) -> String {
        "\(entry.id.hex) \(entry.pack) \(entry.isTree) \(entry.slot)"
    }

    @Test func packMap() throws {
        try fuzz(Self.packMaps, seed: 22) { bytes throws in
            guard let map = try? PackMap.decode(bytes, id: Self.id) else { return }
            let again = try PackMap.decode(map.encode(), id: Self.id)
            #expect(again.packs == map.packs)
            #expect(again.entries.map(Self.key).sorted() == map.entries.map(Self.key).sorted())
        }
    }

    static let prefixEntries: [[UInt8]] = {
        var random = SeededRandom(seed: 23)
        let refs = (0..<5).map { n in
            SnapshotRef(key: "ci-\(n)-main", root: ObjectID.hashing(random.bytes(8)), created: Double(n) * 1000.5,
                        logicalBytes: random.next() >> 10, addedBytes: 3, files: n, directories: 1, symlinks: 0,
                        statIndex: n % 2 == 0 ? ObjectID.hashing(random.bytes(8)) : nil, source: nil, parent: nil)
        }
        return [try! PrefixIndex.encode(refs, prefix: "ci-"), try! PrefixIndex.encode([], prefix: "ci-")]
    }()

    @Test func prefixIndex() throws {
        try fuzz(Self.prefixEntries, seed: 24) { bytes throws in
            guard let refs = PrefixIndex.decode(bytes, prefix: "ci-") else { return }
            #expect(PrefixIndex.decode(try PrefixIndex.encode(refs, prefix: "ci-"), prefix: "ci-") == refs)
        }
    }
}
