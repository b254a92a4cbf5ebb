@testable import BuildFSCore
import Testing
import TestSupport

@Suite struct TreeTests {
    static func entry(_ name: String, _ content: EntryContent = .symlink(target: Array("t".utf8))) -> TreeEntry {
        TreeEntry(name: Array(name.utf8), mode: 0o644, uid: 1000, gid: 100,
                  mtime: Timestamp(seconds: -5, nanoseconds: 999_999_999), content: content)
    }

    static let chunk = ChunkRef(id: ObjectID.hashing([9]), length: 10)

    @Test func encodingRoundTripsAndIsDeterministic() throws {
        let entries = [
            TreeTests.entry("zeta file", .file(size: 20, chunks: [TreeTests.chunk, TreeTests.chunk], linkGroup: 7)),
            TreeTests.entry("日本"),
            TreeTests.entry("dir", .directory(ObjectID.hashing([1]))),
            TreeTests.entry("empty", .file(size: 0, chunks: [], linkGroup: 0)),
        ]
        let tree = Tree(entries: entries)
        let bytes = tree.encode()
        #expect(Tree(entries: entries.reversed()).encode() == bytes)
        let decoded = try Tree.decode(bytes, id: ObjectID.hashing(bytes))
        #expect(decoded == tree)
        #expect(decoded.entry(named: Array("dir".utf8))?.content == .directory(ObjectID.hashing([1])))
        #expect(decoded.entry(named: Array("nope".utf8)) == nil)
    }

    func decodeError(_ tree: Tree) -> String? {
        decodeError(tree.encode())
    }

    func decodeError(_ bytes: [UInt8]) -> String? {
        do {
            _ = try Tree.decode(bytes, id: ObjectID.hashing(bytes))
            return nil
        } catch let error as BuildFSError {
            return error.description
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: ["..", ".", "a/b", "/", "nul\u{0}byte", ""])
    func dangerousNamesAreRefused(name: String) {
        let message = decodeError(Tree(entries: [TreeTests.entry(name)]))
        #expect(message?.contains("corrupt") == true, "\(message ?? "accepted")")
    }

    @Test func overlongNamesAreRefused() {
        #expect(decodeError(Tree(entries: [TreeTests.entry(String(repeating: "n", count: 256))])) != nil)
        #expect(decodeError(Tree(entries: [TreeTests.entry(String(repeating: "n", count: 255))])) == nil)
    }

    @Test func duplicateNamesAreRefused() {
        #expect(decodeError(Tree(entries: [TreeTests.entry("same"), TreeTests.entry("same")]))?.contains("duplicated") == true)
    }

    @Test func chunkSizesMustAddUp() {
        let lying = TreeTests.entry("f", .file(size: 11, chunks: [TreeTests.chunk], linkGroup: 0))
        #expect(decodeError(Tree(entries: [lying]))?.contains("add up") == true)
    }

    @Test func truncatedAndTrailingBytesAreRefused() {
        let bytes = Tree(entries: [TreeTests.entry("a"), TreeTests.entry("b", .directory(ObjectID.hashing([2])))]).encode()
        for cut in 1..<bytes.count {
            #expect(decodeError(Array(bytes.prefix(cut))) != nil, "accepted a tree cut at \(cut)")
        }
        #expect(decodeError(bytes + [0])?.contains("trailing") == true)
        var version = bytes
        version[4] = 2
        #expect(decodeError(version)?.contains("unknown tree format version 2") == true)
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var random = SeededRandom(seed: 99)
        let valid = Tree(entries: [TreeTests.entry("x", .file(size: 10, chunks: [TreeTests.chunk], linkGroup: 0))]).encode()
        for _ in 0..<2000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                bytes[Int.random(in: 4..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            _ = decodeError(bytes) // must throw or decode, never trap
        }
        for _ in 0..<500 {
            _ = decodeError(Array("BFSt".utf8) + [1] + random.bytes(Int.random(in: 0...64, using: &random)))
        }
    }
}
