/// The objects snapshots need, found by walking their trees.
public enum Reachability {
    /// Every object reachable from `refs` (root trees, subtrees, chunks,
    /// stat indexes), with the newest `lastUsed` among the refs reaching it.
    /// Refs are walked newest first, so a subtree already seen cannot gain a
    /// newer time and is skipped: each shared subtree is walked once.
    /// Throws when a tree cannot be read: what it references is then
    /// unknown, and nothing may be swept on a guess. `onTree` sees each
    /// tree walked.
    public static func mark(_ refs: [SnapshotRef], in store: any Store,
                            onTree: (ObjectID) -> Void = { _ in }) throws -> [ObjectID: Double] {
        var lastUse: [ObjectID: Double] = [:]
        for ref in refs.sorted(by: { $0.lastUsed > $1.lastUsed }) {
            guard let root = ref.rootID else { continue }
            for id in ref.objectIDs where lastUse[id] == nil { lastUse[id] = ref.lastUsed }
            var pending = [root]
            var first = true
            while let treeID = pending.popLast() {
                if !first && lastUse[treeID] != nil { continue }
                first = false
                lastUse[treeID] = lastUse[treeID] ?? ref.lastUsed
                onTree(treeID)
                let tree: Tree
                do {
                    tree = try store.getTree(treeID)
                } catch let error as any ReportableError {
                    throw BuildFSError.storeUnusable(
                        path: store.location,
                        reason: "snapshot '\(ref.key)' cannot be read (\(error.description)); run `buildfs fsck --repair` first")
                }
                for entry in tree.entries {
                    switch entry.content {
                    case let .file(_, chunks, _):
                        for chunk in chunks where lastUse[chunk.id] == nil { lastUse[chunk.id] = ref.lastUsed }
                    case let .directory(id):
                        if lastUse[id] == nil { pending.append(id) }
                    case .symlink:
                        break
                    }
                }
            }
        }
        return lastUse
    }
}
