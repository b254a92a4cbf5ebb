@testable import BuildFSCore
import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

@Suite struct LocalStoreTests {
    let dir = TemporaryDirectory()
    var storePath: String { dir.sub("store") }

    func putAll(_ store: LocalStore, _ contents: [[UInt8]]) throws -> (ids: [ObjectID], added: UInt64) {
        try store.writing { writer in
            let ids = try contents.map { try writer.put($0) }
            return (ids, try writer.finish())
        }
    }

    @Test func objectsRoundTripAndDedup() throws {
        let store = try LocalStore(path: storePath)
        var random = SeededRandom(seed: 5)
        let contents = [random.bytes(10), random.bytes(300_000), Array(repeating: 1, count: 2_000_000), []]
        let (ids, added) = try putAll(store, contents)
        #expect(added > 0)
        for (id, content) in zip(ids, contents) {
            #expect(try store.has(id))
            #expect(try store.get(id) == content)
        }
        // The same objects again add nothing.
        #expect(try putAll(store, contents).added == 0)
        // Another process's view (a second instance) finds them too.
        let other = try LocalStore(path: storePath)
        #expect(try other.get(ids[1]) == contents[1])
    }

    /// The inventory comes from the indexes loaded when the store was
    /// opened: a pack rewritten since (every object then in two packs for
    /// this instance) is listed whole, and the removed one not at all.
    @Test func inventoryAfterAnotherInstanceRewroteAPack() throws {
        let store = try LocalStore(path: storePath)
        let (ids, _) = try putAll(store, [Array("a".utf8), Array("b".utf8)])
        let early = try LocalStore(path: storePath)
        let pack = try #require(try store.inventory().packs.first)
        try store.rewritePack(pack, keeping: Set(ids))
        let seen = try early.inventory()
        #expect(seen.packs.count == 1 && seen.packs.first?.name != pack.name)
        #expect(seen.packs.first?.entries.map(\.id) == ids.sorted())
        #expect(seen.packs.first?.bytes == pack.bytes)
    }

    @Test func objectsWrittenByAnotherInstanceAreFoundOnRead() throws {
        let reader = try LocalStore(path: storePath)
        let writer = try LocalStore(path: storePath)
        let (ids, _) = try putAll(writer, [Array("late".utf8)])
        #expect(try reader.get(ids[0]) == Array("late".utf8))
    }

    @Test func missingObjectIsNamed() throws {
        let store = try LocalStore(path: storePath)
        let id = ObjectID.hashing(Array("never stored".utf8))
        #expect(throws: BuildFSError.missingObject(id: id.hex)) { try store.get(id) }
    }

    @Test func flippedByteInPackIsCorruptNeverWrongBytes() throws {
        let store = try LocalStore(path: storePath)
        var random = SeededRandom(seed: 6)
        let contents = [random.bytes(50_000), Array(String(repeating: "text ", count: 20_000).utf8)]
        let (ids, _) = try putAll(store, contents)
        let pack = try #require(try FileManager.default.contentsOfDirectory(atPath: storePath + "/packs")
            .first { $0.hasSuffix(".pack") })
        let path = storePath + "/packs/" + pack
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        for offset in [100, bytes.count - 50] {
            bytes[offset] ^= 0xFF
        }
        chmod(path, 0o644)
        writeFile(path, bytes)
        let fresh = try LocalStore(path: storePath)
        for id in ids {
            #expect {
                try fresh.get(id)
            } throws: { error in
                guard case let BuildFSError.corruptObject(named, _)? = error as? BuildFSError else { return false }
                return named == id.hex
            }
        }
    }

    @Test func damagedIndexIsReportedAndItsObjectsAreMissing() throws {
        let store = try LocalStore(path: storePath)
        let (ids, _) = try putAll(store, [Array("indexed".utf8)])
        let idx = try #require(try FileManager.default.contentsOfDirectory(atPath: storePath + "/packs")
            .first { $0.hasSuffix(".idx") })
        let path = storePath + "/packs/" + idx
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[10] ^= 1
        chmod(path, 0o644)
        writeFile(path, bytes)
        let fresh = try LocalStore(path: storePath)
        #expect(fresh.catalog.damaged.values.first?.contains("checksum") == true)
        #expect(throws: BuildFSError.missingObject(id: ids[0].hex)) { try fresh.get(ids[0]) }
    }

    @Test func unknownFormatVersionIsRefused() throws {
        _ = try LocalStore(path: storePath)
        writeFile(storePath + "/buildfs-store", Array("buildfs store format 7\n".utf8))
        #expect {
            try LocalStore(path: storePath)
        } throws: { error in
            (error as? BuildFSError)?.description.contains("store format 7, this buildfs reads format 1") == true
        }
    }

    @Test func nonEmptyDirectoryIsNotTakenOver() throws {
        mkdir(storePath, 0o755)
        writeFile(storePath + "/precious.txt", [1, 2, 3])
        #expect {
            try LocalStore(path: storePath)
        } throws: { error in
            (error as? BuildFSError)?.description.contains("not a buildfs store") == true
        }
    }

    func ref(_ key: String, created: Double, root: ObjectID = ObjectID.hashing([0])) -> SnapshotRef {
        SnapshotRef(key: key, root: root, created: created, logicalBytes: 0, addedBytes: 0,
                    files: 0, directories: 0, symlinks: 0, statIndex: nil, source: nil, parent: nil)
    }

    @Test func keysAreEscapedNeverUsedAsPaths() throws {
        let store = try LocalStore(path: storePath)
        let keys = ["../../etc/passwd", "a/b", ".", "..", ".hidden", "日本 key", "%41", String(repeating: "k/", count: 300)]
        for (i, key) in keys.enumerated() { try store.writeRef(ref(key, created: Double(i))) }
        let files = try FileManager.default.contentsOfDirectory(atPath: storePath + "/refs")
        #expect(files.count == keys.count)
        for file in files {
            #expect(!file.contains("/") && file != "." && file != ".." && !file.hasPrefix("."))
            #expect(file.utf8.count <= 200)
        }
        for key in keys { #expect(try store.readRef(key: key)?.key == key) }
        #expect(Set(try store.listRefs().refs.map(\.key)) == Set(keys))
        #expect(access(dir.sub("etc"), F_OK) != 0)
    }

    @Test func invalidKeysAreRefused() throws {
        let store = try LocalStore(path: storePath)
        for key in ["", "tab\there", "new\nline", String(repeating: "x", count: 1025)] {
            #expect(throws: BuildFSError.self) { try store.writeRef(ref(key, created: 0)) }
        }
    }

    @Test func damagedRefsAreListedNotFatal() throws {
        let store = try LocalStore(path: storePath)
        try store.writeRef(ref("good", created: 1))
        writeFile(storePath + "/refs/garbage", Array("{not json".utf8))
        // A ref that claims a key other than the one its file name encodes.
        let impostor = try String(contentsOfFile: storePath + "/refs/good", encoding: .utf8)
            .replacingOccurrences(of: "\"good\"", with: "\"other\"")
        writeFile(storePath + "/refs/impostor", Array(impostor.utf8))
        let listing = try store.listRefs()
        #expect(listing.refs.map(\.key) == ["good"])
        #expect(Set(listing.damaged.map(\.name)) == ["garbage", "impostor"])
    }

    @Test func lookupPrefersExactThenNewestPrefixInOrder() throws {
        let store = try LocalStore(path: storePath)
        try store.writeRef(ref("linux-main-1", created: 10))
        try store.writeRef(ref("linux-main-3", created: 30))
        try store.writeRef(ref("linux-main-2", created: 20))
        try store.writeRef(ref("linux-pr", created: 40))
        #expect(try SnapshotLookup.find(["linux-main-2"], in: store).key == "linux-main-2")
        #expect(try SnapshotLookup.find(["linux-main-9", "linux-main-"], in: store).key == "linux-main-3")
        #expect(try SnapshotLookup.find(["linux-"], in: store).key == "linux-pr")
        #expect(try SnapshotLookup.find(["nope", "linux-main-1"], in: store).key == "linux-main-1")
        #expect(throws: BuildFSError.unknownKey(["mac-", "win-"])) {
            try SnapshotLookup.find(["mac-", "win-"], in: store)
        }
    }
}

@Suite struct StoreCreationTests {
    @Test func manyProcessesCreatingOneStoreAllSucceed() throws {
        let dir = TemporaryDirectory()
        for round in 0..<20 {
            let path = dir.sub("store-\(round)")
            // Threads stand in for processes: each opens its own instance.
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do { _ = try LocalStore(path: path) } catch { failures.withLock { $0.append("\(error)") } }
            }
            #expect(failures.withLock { $0 }.isEmpty, "round \(round): \(failures.withLock { $0 })")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix(".format-") }
            #expect(leftovers.isEmpty)
        }
    }
}
