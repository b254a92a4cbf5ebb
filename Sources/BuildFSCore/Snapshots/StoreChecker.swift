/// What `buildfs fsck` found.
public struct FsckReport: Sendable {
    public var packs = 0
    public var objects = 0
    /// Objects whose bytes are not what their id says.
    public var corrupt: [(id: ObjectID, pack: String, reason: String)] = []
    /// Snapshots that cannot be read whole, with the first reason found.
    public var brokenSnapshots: [(key: String, reason: String)] = []
    public var damagedRefs: [(name: String, reason: String)] = []
    public var damagedIndexes: [(name: String, reason: String)] = []
    /// Not damage: what gc clears.
    public var unindexedPacks: [String] = []
    public var temporaryFiles: [String] = []
    public var unreferencedObjects = 0
    public var snapshots = 0

    public var isClean: Bool {
        corrupt.isEmpty && brokenSnapshots.isEmpty && damagedRefs.isEmpty && damagedIndexes.isEmpty
    }
}

/// `buildfs fsck [--repair]`: re-hashes every object, checks every snapshot
/// reaches only healthy objects, and names what is wrong. Repair removes
/// corrupt objects (their packs are rewritten without them) and the
/// snapshots that can no longer be read, and nothing healthy.
public final class StoreChecker {
    let store: LocalStore

    public init(store: LocalStore) { self.store = store }

    public func check() throws -> FsckReport {
        var report = FsckReport()
        let inventory = try store.inventory()
        report.packs = inventory.packs.count
        report.damagedIndexes = inventory.damagedIndexes
        report.unindexedPacks = inventory.unindexedPacks
        report.temporaryFiles = inventory.temporaryFiles

        var healthy = Set<ObjectID>()
        var corruptIDs = Set<ObjectID>()
        for pack in inventory.packs {
            let damaged = store.verify(pack)
            for item in damaged { report.corrupt.append((item.id, pack.name, item.reason)) }
            corruptIDs.formUnion(damaged.map(\.id))
            for entry in pack.entries { healthy.insert(entry.id) }
        }
        // An object with one good copy in another pack is still readable.
        healthy.subtract(corruptIDs.subtracting(goodCopies(of: corruptIDs, in: inventory, corrupt: report.corrupt)))
        report.objects = healthy.count + corruptIDs.subtracting(healthy).count

        let listing = try store.listRefs()
        report.damagedRefs = listing.damaged
        report.snapshots = listing.refs.count
        var reachable = Set<ObjectID>()
        for ref in listing.refs {
            if let reason = problem(with: ref, healthy: healthy, reachable: &reachable) {
                report.brokenSnapshots.append((ref.key, reason))
            }
        }
        report.unreferencedObjects = healthy.subtracting(reachable).count
        return report
    }

    /// Ids in `ids` that some pack holds with its bytes intact.
    private func goodCopies(of ids: Set<ObjectID>, in inventory: StoreInventory,
                            corrupt: [(id: ObjectID, pack: String, reason: String)]) -> Set<ObjectID> {
        let badPlaces = Set(corrupt.map { "\($0.pack)/\($0.id.hex)" })
        var good = Set<ObjectID>()
        for pack in inventory.packs {
            for entry in pack.entries where ids.contains(entry.id) && !badPlaces.contains("\(pack.name)/\(entry.id.hex)") {
                good.insert(entry.id)
            }
        }
        return good
    }

    /// Why `ref` cannot be read whole, or nil: the first problem in path order,
    /// and how many more. Walks the whole snapshot even past damage, so
    /// what it adds to `reachable` (and so the unreferenced count) does not
    /// depend on where the damage is.
    private func problem(with ref: SnapshotRef, healthy: Set<ObjectID>, reachable: inout Set<ObjectID>) -> String? {
        var problems: [(path: String, text: String)] = []
        for id in ref.objectIDs {
            reachable.insert(id)
            if !healthy.contains(id) { problems.append(("", "object \(id.hex) is missing or corrupt")) }
        }
        guard let root = ref.rootID else { return "bad root id" }
        var walk = TreeWalk(skippingWalkedTrees: true)
        walk.walk(root, at: "", read: { treeID, path in
            reachable.insert(treeID)
            let directory = path.isEmpty ? "the top directory" : "directory '\(path)'"
            guard healthy.contains(treeID) else {
                problems.append((path, "tree \(treeID.hex) of \(directory) is missing or corrupt"))
                return nil
            }
            do { return try store.getTree(treeID) } catch {
                problems.append((path, "tree \(treeID.hex) of \(directory): \(error)"))
                return nil
            }
        }, visit: { entry, path in
            let entryPath = path.isEmpty ? entry.nameString : path + "/" + entry.nameString
            if case let .file(_, chunks, _) = entry.content {
                var named = false
                for chunk in chunks {
                    reachable.insert(chunk.id)
                    if !healthy.contains(chunk.id) && !named {
                        problems.append((entryPath, "chunk \(chunk.id.hex) of '\(entryPath)' is missing or corrupt"))
                        named = true
                    }
                }
            }
            return entryPath
        })
        guard let first = problems.min(by: { ($0.path, $0.text) < ($1.path, $1.text) })?.text else { return nil }
        return problems.count == 1 ? first : first + " (and \(problems.count - 1) more damaged)"
    }

    /// Removes what `report` found damaged, under the store's exclusive lock.
    public func repair(_ report: FsckReport) throws {
        try store.exclusively {
            for snapshot in report.brokenSnapshots { try store.removeRef(key: snapshot.key) }
            for ref in report.damagedRefs { store.removeRefFile(named: ref.name) }
            for index in report.damagedIndexes { try store.removePack(index.name) }
            let corruptByPack = Dictionary(grouping: report.corrupt, by: \.pack)
            for pack in try store.inventory().packs {
                guard let bad = corruptByPack[pack.name] else { continue }
                let keep = Set(pack.entries.map(\.id)).subtracting(bad.map(\.id))
                try store.rewritePack(pack, keeping: keep)
            }
        }
    }
}
