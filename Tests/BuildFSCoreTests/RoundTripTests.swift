@testable import BuildFSCore
import Foundation
import Glibc
import Testing
import TestSupport

@Suite struct RoundTripTests {
    let dir = TemporaryDirectory()

    func roundTrip(_ source: String, store: LocalStore, key: String, into target: String) throws -> ImportSummary {
        let summary = try Importer(store: store).importDirectory(source, key: key, progress: false)
        let ref = try SnapshotLookup.find([key], in: store)
        _ = try Exporter(store: store).export(ref, to: target, progress: false)
        return summary
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomTreesRoundTripExactly(seed: UInt64) throws {
        var generator = RandomTree(seed: seed)
        generator.generate(at: dir.sub("source"))
        let store = try LocalStore(path: dir.sub("store"))
        _ = try roundTrip(dir.sub("source"), store: store, key: "seed-\(seed)", into: dir.sub("restored"))
        let differences = TreeListing(of: dir.sub("restored")).differences(from: TreeListing(of: dir.sub("source")))
        #expect(differences.isEmpty, "seed \(seed): \(differences.prefix(10))")
    }

    @Test func unchangedFilesAreNotReadAgain() throws {
        var generator = RandomTree(seed: 11)
        generator.generate(at: dir.sub("source"))
        let store = try LocalStore(path: dir.sub("store"))
        let first = try Importer(store: store).importDirectory(dir.sub("source"), key: "run-1", progress: false)
        #expect(first.filesRead > 0 && first.parentKey == nil)

        let again = try Importer(store: store).importDirectory(dir.sub("source"), key: "run-2", progress: false)
        #expect(again.parentKey == "run-1")
        #expect(again.filesRead == 0 && again.bytesRead == 0)
        #expect(again.ref.root == first.ref.root)
        #expect(again.ref.addedBytes < 4096) // only the new stat index, at most

        // Change one file: exactly that one is read, and the result is exact.
        writeFile(dir.sub("source/changed.c"), Array("int main(void) { return 1; }\n".utf8))
        let third = try Importer(store: store).importDirectory(dir.sub("source"), key: "run-3", progress: false)
        #expect(third.filesRead == 1)
        _ = try Exporter(store: store).export(third.ref, to: dir.sub("restored"), progress: false)
        #expect(TreeListing(of: dir.sub("restored")).differences(from: TreeListing(of: dir.sub("source"))).isEmpty)
    }

    @Test func explicitParentIsUsed() throws {
        var generator = RandomTree(seed: 12)
        generator.generate(at: dir.sub("source"))
        let store = try LocalStore(path: dir.sub("store"))
        _ = try Importer(store: store).importDirectory(dir.sub("source"), key: "base", progress: false)
        let next = try Importer(store: store).importDirectory(dir.sub("source"), key: "next",
                                                               parentCandidates: ["ba"], progress: false)
        #expect(next.parentKey == "base" && next.filesRead == 0)
    }

    @Test func largeFileInsertionStoresOnlyNearbyChunks() throws {
        let store = try LocalStore(path: dir.sub("store"))
        var random = SeededRandom(seed: 21)
        var content = random.bytes(20 * 1024 * 1024)
        mkdir(dir.sub("source"), 0o755)
        writeFile(dir.sub("source/big.bin"), content)
        let first = try Importer(store: store).importDirectory(dir.sub("source"), key: "v1", progress: false)
        content.insert(contentsOf: random.bytes(1000), at: 10_000)
        writeFile(dir.sub("source/big.bin"), content)
        let second = try Importer(store: store).importDirectory(dir.sub("source"), key: "v2", progress: false)
        #expect(first.ref.addedBytes > 19_000_000)
        // Only the chunks around the insertion are new (at most two max-size chunks).
        #expect(second.ref.addedBytes < UInt64(3 * FastCDC.maxSize), "added \(second.ref.addedBytes)")
    }

    @Test func maliciousTreesAreRefusedAndNothingEscapes() throws {
        let store = try LocalStore(path: dir.sub("store"))
        let marker = TreeEntry(name: Array("ok".utf8), mode: 0o644, uid: 0, gid: 0,
                               mtime: Timestamp(seconds: 0, nanoseconds: 0), content: .symlink(target: Array("/etc".utf8)))
        for badName in ["..", "../escaped", "sub/escaped", ".", "x\u{0}y"] {
            var evil = marker
            evil.name = Array(badName.utf8)
            try store.writing { writer in
                let root = try writer.put(Tree(entries: [marker, evil]).encode())
                _ = try writer.finish()
                try store.writeRef(SnapshotRef(key: "evil", root: root, created: 0, logicalBytes: 0, addedBytes: 0,
                                               files: 0, directories: 0, symlinks: 2, statIndex: nil, source: nil, parent: nil))
            }
            let target = dir.sub("target-\(abs(badName.hashValue))")
            #expect {
                try Exporter(store: store).export(try SnapshotLookup.find(["evil"], in: store), to: target, progress: false)
            } throws: { error in
                (error as? BuildFSError)?.description.contains("corrupt") == true
            }
            #expect(access(dir.sub("escaped"), F_OK) != 0)
        }
    }

    @Test func exportRefusesNonEmptyTarget() throws {
        let store = try LocalStore(path: dir.sub("store"))
        mkdir(dir.sub("source"), 0o755)
        writeFile(dir.sub("source/a"), [1])
        let summary = try Importer(store: store).importDirectory(dir.sub("source"), key: "k", progress: false)
        #expect {
            try Exporter(store: store).export(summary.ref, to: dir.sub("source"), progress: false)
        } throws: { error in
            (error as? BuildFSError)?.description.contains("not empty") == true
        }
    }
}
