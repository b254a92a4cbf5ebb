@testable import BuildFSCore
import CLinuxCalls
import Foundation
import Glibc
import Testing
import TestSupport

/// The snapshot layer without a mount: expansion, copy-up and the read-back
/// a commit does, called directly on an upper directory (root: trusted.*
/// attributes).
@Suite(.serialized) struct LayeringTests {
    let dir = TemporaryDirectory()
    let store: LocalStore
    let ref: SnapshotRef
    let upper: String
    let layer: SnapshotLayer
    let big: [UInt8]

    /// A small snapshot: a multi-chunk file, a setuid file with an mtime in
    /// nanoseconds, a symlink, a hard link across directories, and a
    /// directory two levels down.
    init() throws {
        let source = dir.sub("source")
        var random = SeededRandom(seed: 41)
        big = random.bytes(700_000)
        for path in ["src/sub", "other"] {
            try FileManager.default.createDirectory(atPath: source + "/" + path, withIntermediateDirectories: true)
        }
        writeFile(source + "/big.bin", big)
        writeFile(source + "/src/a.c", Array("int a;\n".utf8), mode: 0o4755)
        writeFile(source + "/src/sub/b.h", Array("#define B 1\n".utf8))
        setMtime(source + "/src/a.c", seconds: 1_600_000_000, nanoseconds: 123_456_789)
        #expect(link(source + "/src/a.c", source + "/other/a-link.c") == 0)
        #expect(symlink("src/a.c", source + "/link") == 0)
        store = try LocalStore(path: dir.sub("store"))
        ref = try Importer(store: store).importDirectory(source, key: "k", progress: false).ref
        upper = dir.sub("upper")
        try FileManager.default.createDirectory(atPath: upper, withIntermediateDirectories: false)
        layer = try #require(try SnapshotLayer.attach(upper: upper, store: store, ref: ref))
    }

    func openPath(_ path: String) throws -> FileDescriptor {
        try FileDescriptor.open(path, BUILDFS_O_PATH | O_DIRECTORY)
    }

    func lstatOf(_ path: String) -> stat {
        var st = stat()
        #expect(lstat(path, &st) == 0, "\(path)")
        return st
    }

    @Test func attachMarksTheRootPendingAndRecordsTheSnapshot() throws {
        #expect(UpperLayout.pendingTree(at: .file(upper)) == ref.rootID)
        let recorded = try #require(SnapshotLayer.recorded(in: upper))
        #expect(recorded.root == ref.rootID && recorded.key == "k")
        // Attaching again takes it up; another snapshot is refused.
        #expect(try SnapshotLayer.attach(upper: upper, store: store, ref: nil)?.key == "k")
        let other = try Importer(store: store).importDirectory(dir.sub("source/src"), key: "other", progress: false).ref
        #expect(throws: BuildFSError.self) { try SnapshotLayer.attach(upper: upper, store: store, ref: other) }
    }

    @Test func expansionCreatesStubsAndPendingDirectories() throws {
        let root = try openPath(upper)
        var before = lstatOf(upper)
        try layer.expand(root.raw, tree: try #require(ref.rootID))
        #expect(UpperLayout.pendingTree(at: .file(upper)) == nil)
        // Expanding is not a change: the directory's mtime is put back.
        var after = lstatOf(upper)
        #expect(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec)

        // A stub: the snapshot's size, sparse on disk, marked with its entry.
        let stubStat = lstatOf(upper + "/big.bin")
        #expect(stubStat.st_size == big.count && stubStat.st_blocks == 0)
        let stub = try #require(UpperLayout.stub(at: .entry(of: root, name: Array("big.bin".utf8))))
        #expect(stub.tree == ref.rootID && stub.name == Array("big.bin".utf8))
        // The expansion noted it for the first lookup, once.
        let key = InodeKey(device: UInt64(stubStat.st_dev), inode: UInt64(stubStat.st_ino))
        #expect(layer.takeStubNote(key)?.stub == stub)
        #expect(layer.takeStubNote(key) == nil)
        #expect(try layer.chunkList(of: stub).reduce(0) { $0 + Int($1.length) } == big.count)

        // Subdirectories are pending with their trees; symlinks are symlinks.
        #expect(UpperLayout.pendingTree(at: .entry(of: root, name: Array("src".utf8))) != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: upper + "/src").isEmpty)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: upper + "/link") == "src/a.c")

        // One level further: owner, mode with setuid, mtime with nanoseconds,
        // and a hard link across directories is one inode, in the link index.
        try layer.expandSubdirectories(of: root.raw)
        let a = lstatOf(upper + "/src/a.c"), aLink = lstatOf(upper + "/other/a-link.c")
        #expect(a.st_ino == aLink.st_ino && a.st_mode & 0o7777 == 0o4755)
        #expect(a.st_mtim.tv_sec == 1_600_000_000 && a.st_mtim.tv_nsec == 123_456_789)
        #expect(UpperLayout.isIndexed(at: .file(upper + "/src/a.c")))
        #expect(!UpperLayout.isIndexed(at: .file(upper + "/big.bin")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: upper + "/" + UpperLayout.linksDirectory).count == 1)
        #expect(UpperLayout.pendingTree(at: .file(upper + "/src/sub")) != nil)
        before = after
        after = lstatOf(upper)
        #expect(before.st_mtim.tv_nsec == after.st_mtim.tv_nsec)
    }

    @Test func anExpansionKilledMidwayIsRedoneFromScratch() throws {
        let root = try openPath(upper)
        try layer.expand(root.raw, tree: try #require(ref.rootID))
        try layer.expandSubdirectories(of: root.raw)
        // src/sub is still pending; what a killed expansion left in it goes.
        let sub = upper + "/src/sub"
        let pending = try #require(UpperLayout.pendingTree(at: .file(sub)))
        writeFile(sub + "/b.h", Array("half".utf8))
        writeFile(sub + "/leftover", [1, 2, 3])
        let subFD = try openPath(sub)
        try layer.expand(subFD.raw, tree: pending)
        #expect(try FileManager.default.contentsOfDirectory(atPath: sub) == ["b.h"])
        #expect(lstatOf(sub + "/b.h").st_size == 12)
        #expect(UpperLayout.stub(at: .file(sub + "/b.h")) != nil)
    }

    @Test func copyUpFillsTheStubAndKeepsItsMtime() throws {
        let root = try openPath(upper)
        try layer.expand(root.raw, tree: try #require(ref.rootID))
        let path = upper + "/big.bin"
        let stub = try #require(UpperLayout.stub(at: .file(path)))
        let before = lstatOf(path)
        try layer.copyUp(path, stub: stub)
        #expect(FileManager.default.contents(atPath: path) == Data(big))
        #expect(UpperLayout.stub(at: .file(path)) == nil)
        let after = lstatOf(path)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(after.st_blocks > 0)
        #expect(layer.counters.values["filesCopiedUp"] == 1)
    }

    /// What a commit of a mount does: the upper directory read back, stubs
    /// and pending directories reused by id, only real files read.
    @Test func commitReadsTheLayoutBack() throws {
        let root = try openPath(upper)
        try layer.expand(root.raw, tree: try #require(ref.rootID))
        try layer.expandSubdirectories(of: root.raw)
        // The job: copies up and rewrites a.c, removes big.bin, adds a file.
        let aPath = upper + "/src/a.c"
        try layer.copyUp(aPath, stub: try #require(UpperLayout.stub(at: .file(aPath))))
        writeFile(aPath, Array("int a = 2;\n".utf8), mode: 0o4755)
        #expect(unlink(upper + "/big.bin") == 0)
        writeFile(upper + "/new.o", [7, 7, 7])

        let summary = try Importer(store: store).importDirectory(upper, key: "k2", upperOfMount: true, progress: false)
        // Read: the rewritten a.c and new.o. Not read: the stubs and src/sub.
        #expect(summary.filesRead == 2, "\(summary)")
        _ = try Exporter(store: store).export(summary.ref, to: dir.sub("restored"), progress: false)

        let expected = dir.sub("expected")
        #expect(try Shell.run(["cp", "-a", dir.sub("source"), expected]).status == 0)
        writeFile(expected + "/src/a.c", Array("int a = 2;\n".utf8), mode: 0o4755)
        #expect(unlink(expected + "/big.bin") == 0)
        writeFile(expected + "/new.o", [7, 7, 7])
        let differences = TreeListing(of: dir.sub("restored")).withoutMtimes()
            .differences(from: TreeListing(of: expected).withoutMtimes())
        #expect(differences.isEmpty, "\(differences.prefix(10))")
        #expect(!FileManager.default.fileExists(atPath: dir.sub("restored/") + UpperLayout.internalDirectory))
        // A file never copied up keeps the snapshot's mtime.
        #expect(lstatOf(dir.sub("restored/src/sub/b.h")).st_mtim.tv_sec == lstatOf(expected + "/src/sub/b.h").st_mtim.tv_sec)
    }
}
