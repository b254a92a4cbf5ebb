@testable import BuildFSCore
import Foundation
import Glibc
import Testing
import TestSupport

/// gc and fsck on a store of five snapshots that share most of their files,
/// each with a megabyte of its own, used at known times.
@Suite struct MaintenanceTests {
    let dir = TemporaryDirectory()
    let store: LocalStore
    let now = Date().timeIntervalSince1970
    /// Last use of snapshot i: i days ago.
    func lastUsed(_ i: Int) -> Double { now - Double(i) * 86_400 }

    init() throws {
        store = try LocalStore(path: dir.sub("store"))
        var random = SeededRandom(seed: 8)
        mkdir(dir.sub("shared"), 0o755)
        for i in 0..<20 { writeFile(dir.sub("shared/file\(i)"), random.bytes(20_000 + i)) }
        for i in 0..<5 {
            let source = dir.sub("source-\(i)")
            #expect(try Shell.run(["cp", "-a", dir.sub("shared"), source]).status == 0)
            writeFile(source + "/own.bin", random.bytes(1_000_000))
            _ = try Importer(store: store).importDirectory(source, key: "snap-\(i)", progress: false)
            setMtime(dir.sub("store/refs/snap-\(i)"), seconds: Int(lastUsed(i)), nanoseconds: 0)
        }
    }

    func keys() throws -> Set<String> { Set(try store.listRefs().refs.map(\.key)) }

    /// Every remaining snapshot exports exactly the tree it was made from.
    func expectRemainingExact() throws {
        for ref in try store.listRefs().refs {
            let i = Int(ref.key.dropFirst(5))!
            let target = dir.sub("check-\(ref.key)-\(UInt32.random(in: 0...UInt32.max))")
            _ = try Exporter(store: store).export(ref, to: target, progress: false)
            let differences = TreeListing(of: target).differences(from: TreeListing(of: dir.sub("source-\(i)")))
            #expect(differences.isEmpty, "\(ref.key): \(differences.prefix(3))")
        }
        #expect(try StoreChecker(store: store).check().isClean)
    }

    @Test func maxAgeEvictsOldSnapshotsButKeepsTheNewest() throws {
        let plan = try GarbageCollector(store: store).run(GCPolicy(maxAge: 2.5 * 86_400, keep: 1), dryRun: false, now: now)
        #expect(Set(plan.evict.map(\.key)) == ["snap-3", "snap-4"])
        #expect(try keys() == ["snap-0", "snap-1", "snap-2"])
        try expectRemainingExact()
    }

    @Test func keepProtectsTheMostRecentlyUsed() throws {
        _ = try GarbageCollector(store: store).run(GCPolicy(maxAge: 0, keep: 2), dryRun: false, now: now)
        #expect(try keys() == ["snap-0", "snap-1"])
        try expectRemainingExact()
    }

    /// Alone, --keep N leaves exactly the N most recently used (restic's
    /// --keep-last), and their objects only.
    @Test func keepAloneLeavesOnlyTheMostRecentlyUsed() throws {
        let before = try store.inventory().totalBytes
        let plan = try GarbageCollector(store: store).run(GCPolicy(keep: 2), dryRun: false, now: now)
        #expect(Set(plan.evict.map(\.key)) == ["snap-2", "snap-3", "snap-4"])
        #expect(try keys() == ["snap-0", "snap-1"])
        // Three snapshots' own megabytes (random, incompressible) are gone.
        #expect(try store.inventory().totalBytes < before - 2_500_000)
        try expectRemainingExact()
    }

    @Test func maxSizeEvictsLeastRecentlyUsedFirstAndFits() throws {
        let before = try store.inventory().totalBytes
        // Room for about three snapshots' own megabytes plus the shared part.
        let limit = before - 2_000_000
        let plan = try GarbageCollector(store: store).run(GCPolicy(maxSize: limit), dryRun: false, now: now)
        #expect(plan.evict.map(\.key) == ["snap-4", "snap-3"])
        #expect(try keys() == ["snap-0", "snap-1", "snap-2"])
        #expect(try store.inventory().totalBytes <= limit)
        try expectRemainingExact()
    }

    @Test func dryRunPredictsTheRealRun() throws {
        let policy = GCPolicy(maxSize: try store.inventory().totalBytes - 2_500_000, keep: 1)
        let predicted = try GarbageCollector(store: store).run(policy, dryRun: true, now: now)
        #expect(try keys().count == 5) // nothing happened
        let real = try GarbageCollector(store: store).run(policy, dryRun: false, now: now)
        #expect(predicted.evict.map(\.key) == real.evict.map(\.key))
        #expect(predicted.removePacks == real.removePacks)
        #expect(predicted.rewritePacks.map(\.pack.name) == real.rewritePacks.map(\.pack.name))
        #expect(predicted.bytesAfter == real.bytesAfter)
        let actual = try store.inventory().totalBytes
        #expect(Double(actual) <= Double(real.bytesAfter) * 1.05 + 4096, "estimated \(real.bytesAfter), got \(actual)")
    }

    @Test func noLimitsRemovesOnlyGarbage() throws {
        // Replacing snap-0 leaves its old own.bin unreferenced.
        writeFile(dir.sub("source-0/own.bin"), Array(repeating: 1, count: 10))
        _ = try Importer(store: store).importDirectory(dir.sub("source-0"), key: "snap-0", progress: false)
        let plan = try GarbageCollector(store: store).run(GCPolicy(), dryRun: false, now: now)
        #expect(plan.evict.isEmpty)
        #expect(try keys().count == 5)
        #expect(plan.bytesAfter < plan.bytesBefore - 900_000)
        #expect(try StoreChecker(store: store).check().unreferencedObjects == 0)
        try expectRemainingExact()
    }

    /// Damages the stored block that holds object `victim`, within the
    /// victim's own bytes when the block is stored raw (random content is).
    func flipAByte(of victim: ObjectID) throws {
        let pack = try #require(try store.inventory().packs.first { $0.entries.contains { $0.id == victim } })
        let slot = pack.entries.first { $0.id == victim }!.slot
        let path = dir.sub("store/packs/\(pack.name).pack")
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        let inBlock = min(Int(slot.offsetInBlock) + 100, Int(slot.blockLength) - BlockCodec.headerSize - 1)
        bytes[Int(slot.blockOffset) + BlockCodec.headerSize + inBlock] ^= 0x55
        chmod(path, 0o644)
        writeFile(path, bytes)
    }

    @Test func flippedByteIsNamedByFsckAndExportAndRepairRemovesOnlyWhatIsBroken() throws {
        // Find the pack and block that hold snap-3's own megabyte, and damage it.
        let ref = try #require(try store.readRef(key: "snap-3"))
        let tree = try store.getTree(ref.rootID!)
        guard case let .file(_, chunks, _)? = tree.entry(named: Array("own.bin".utf8))?.content else {
            Issue.record("own.bin missing")
            return
        }
        let victim = chunks[0].id
        try flipAByte(of: victim)

        let report = try StoreChecker(store: try LocalStore(path: dir.sub("store"))).check()
        #expect(!report.isClean)
        #expect(report.corrupt.contains { $0.id == victim })
        #expect(report.brokenSnapshots.map(\.key) == ["snap-3"])

        #expect {
            try Exporter(store: try LocalStore(path: dir.sub("store"))).export(ref, to: dir.sub("broken"), progress: false)
        } throws: { error in
            (error as? BuildFSError)?.description.contains(victim.hex) == true
        }

        try StoreChecker(store: store).repair(report)
        #expect(try keys() == ["snap-0", "snap-1", "snap-2", "snap-4"])
        try expectRemainingExact()
    }
}

extension MaintenanceTests {
    /// fsck names a damaged file by its path in the snapshot, and walks the
    /// whole snapshot past the damage: its counts do not depend on where the
    /// damage is or on the order of the walk.
    @Test func fsckNamesTheDamagedFileByItsPathAndCountsTheSameEveryTime() throws {
        var random = SeededRandom(seed: 21)
        let source = dir.sub("nested")
        for sub in ["", "/data", "/data/deep", "/other"] { mkdir(source + sub, 0o755) }
        writeFile(source + "/data/deep/rand.bin", random.bytes(400_000))
        writeFile(source + "/other/rand.bin", random.bytes(400_000))
        let ref = try Importer(store: store).importDirectory(source, key: "nested", progress: false).ref
        let clean = try StoreChecker(store: store).check()
        #expect(clean.isClean && clean.unreferencedObjects == 0)

        // Damage a chunk of data/deep/rand.bin and one of other/rand.bin.
        var victims: [ObjectID] = []
        for path in [["data", "deep", "rand.bin"], ["other", "rand.bin"]] {
            var tree = try store.getTree(ref.rootID!)
            for name in path.dropLast() {
                guard case let .directory(id)? = tree.entry(named: Array(name.utf8))?.content else { throw TestFailure("no \(name)") }
                tree = try store.getTree(id)
            }
            guard case let .file(_, chunks, _)? = tree.entry(named: Array(path.last!.utf8))?.content else { throw TestFailure("no file") }
            victims.append(chunks[1].id)
        }
        for victim in victims { try flipAByte(of: victim) }
        let reports = try (0..<3).map { _ in try StoreChecker(store: try LocalStore(path: dir.sub("store"))).check() }
        for report in reports {
            let nested = report.brokenSnapshots.first { $0.key == "nested" }
            #expect(nested?.reason.contains("'data/deep/rand.bin'") == true, "\(String(describing: nested))")
            #expect(nested?.reason.contains("1 more") == true, "\(String(describing: nested))")
            #expect(report.unreferencedObjects == 0, "the walk stopped at the damage")
            #expect(report.corrupt.count == reports[0].corrupt.count)
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite struct QuantityTests {
    @Test func sizes() throws {
        #expect(try Quantities.parseSize("5G") == 5_000_000_000)
        #expect(try Quantities.parseSize("500M") == 500_000_000)
        #expect(try Quantities.parseSize("1.5GB") == 1_500_000_000)
        #expect(try Quantities.parseSize("2Gi") == 2 * 1_073_741_824)
        #expect(try Quantities.parseSize("4096") == 4096)
        #expect(throws: BuildFSError.self) { try Quantities.parseSize("lots") }
        #expect(throws: BuildFSError.self) { try Quantities.parseSize("-1G") }
    }

    @Test func durations() throws {
        #expect(try Quantities.parseDuration("7d") == 7 * 86_400)
        #expect(try Quantities.parseDuration("12h") == 43_200)
        #expect(try Quantities.parseDuration("30m") == 1800)
        #expect(try Quantities.parseDuration("2w") == 1_209_600)
        #expect(try Quantities.parseDuration("90") == 90)
        #expect(throws: BuildFSError.self) { try Quantities.parseDuration("soon") }
    }
}
