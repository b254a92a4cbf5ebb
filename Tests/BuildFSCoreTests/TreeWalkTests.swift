@testable import BuildFSCore
import Testing

@Suite struct TreeWalkTests {
    static func id(_ n: Int) -> ObjectID { ObjectID.hashing(Array("tree \(n)".utf8)) }

    static func entry(_ name: String, _ content: EntryContent) -> TreeEntry {
        TreeEntry(name: Array(name.utf8), mode: 0o755, uid: 0, gid: 0, mtime: Timestamp(seconds: 0, nanoseconds: 0), content: content)
    }

    static let file = EntryContent.file(size: 0, chunks: [], linkGroup: 0)

    /// root: a -> X, b -> X, f; X: g, sub -> Y; Y: h
    static let trees: [ObjectID: Tree] = [
        id(0): Tree(entries: [entry("a", .directory(id(1))), entry("b", .directory(id(1))), entry("f", file)]),
        id(1): Tree(entries: [entry("g", file), entry("sub", .directory(id(2)))]),
        id(2): Tree(entries: [entry("h", file)]),
    ]

    func paths(skipping: Bool) -> (visited: [String], read: [String]) {
        var walk = TreeWalk(skippingWalkedTrees: skipping)
        var visited: [String] = [], read: [String] = []
        walk.walk(Self.id(0), at: "", read: { id, path in
            read.append(path)
            return Self.trees[id]
        }, visit: { entry, path in
            let entryPath = path.isEmpty ? entry.nameString : path + "/" + entry.nameString
            visited.append(entryPath)
            return entryPath
        })
        return (visited, read)
    }

    @Test func visitsInPreOrderAndEveryCopyWhenNotSkipping() {
        let walked = paths(skipping: false)
        #expect(walked.visited == ["a", "a/g", "a/sub", "a/sub/h", "b", "b/g", "b/sub", "b/sub/h", "f"])
        #expect(walked.read == ["", "a", "a/sub", "b", "b/sub"])
    }

    @Test func readsEachTreeOnceWhenSkipping() {
        let walked = paths(skipping: true)
        #expect(walked.visited == ["a", "a/g", "a/sub", "a/sub/h", "b", "f"])
        #expect(walked.read == ["", "a", "a/sub"])
    }

    @Test func nilFromReadOrVisitLeavesATreeOut() {
        var walk = TreeWalk(skippingWalkedTrees: false)
        var names: [String] = []
        walk.walk(Self.id(0), at: 0, read: { id, _ in id == Self.id(2) ? nil : Self.trees[id] }, visit: { entry, depth in
            names.append(entry.nameString)
            return entry.nameString == "b" ? nil : depth + 1
        })
        #expect(names == ["a", "g", "sub", "b", "f"])
    }

    @Test func stopsAtTheFirstError() {
        struct Stop: Error {}
        var walk = TreeWalk(skippingWalkedTrees: true)
        var names: [String] = []
        #expect(throws: Stop.self) {
            try walk.walk(Self.id(0), read: { Self.trees[$0] }, visit: { entry in
                names.append(entry.nameString)
                if entry.nameString == "sub" { throw Stop() }
            })
        }
        #expect(names == ["a", "g", "sub"])
    }

    /// Trees from another store may nest deeper than a thread's stack.
    @Test func walksAChainDeeperThanRecursionCould() {
        let depth = 200_000
        var walk = TreeWalk(skippingWalkedTrees: true)
        var entries = 0, reads = 0
        walk.walk(Self.id(0), read: { id in
            reads += 1
            return reads > depth ? nil : Tree(entries: [Self.entry("d", .directory(ObjectID.hashing(id.bytes)))])
        }, visit: { _ in entries += 1 })
        #expect(entries == depth)
    }
}
