/// The objects snapshots need, found by walking their trees.
public enum Reachability {
    /// What keeps objects alive: a snapshot's ref, or a live mount's lease
    /// on the root it reads.
    public struct Claim: Sendable {
        /// Names the claim in errors.
        public var name: String
        public var root: ObjectID?
        /// The objects it names directly, root included.
        public var objectIDs: [ObjectID]
        public var lastUsed: Double

        public init(_ ref: SnapshotRef) {
            name = "snapshot '\(ref.key)'"
            root = ref.rootID
            objectIDs = ref.objectIDs
            lastUsed = ref.lastUsed
        }

        /// A lease counts as used forever: evicting refs never frees what
        /// a live mount reads.
        public static func lease(root: ObjectID) -> Claim {
            Claim(name: "the snapshot of a live mount (root \(root.hex))", root: root, objectIDs: [root], lastUsed: .infinity)
        }

        private init(name: String, root: ObjectID, objectIDs: [ObjectID], lastUsed: Double) {
            self.name = name
            self.root = root
            self.objectIDs = objectIDs
            self.lastUsed = lastUsed
        }
    }

    /// `mark` for snapshots' refs.
    public static func mark(_ refs: [SnapshotRef], in store: any Store,
                            onTree: (ObjectID) -> Void = { _ in }) throws -> [ObjectID: Double] {
        try mark(refs.map(Claim.init), in: store, onTree: onTree)
    }

    /// Every object reachable from `claims` (root trees, subtrees, chunks,
    /// stat indexes), with the newest `lastUsed` among the claims reaching
    /// it. Claims are walked newest first, so a subtree already seen cannot
    /// gain a newer time and is skipped: each shared subtree is walked once.
    /// Throws when a tree cannot be read: what it references is then
    /// unknown, and nothing may be swept on a guess. `onTree` sees each
    /// tree walked.
    public static func mark(_ claims: [Claim], in store: any Store,
                            onTree: (ObjectID) -> Void = { _ in }) throws -> [ObjectID: Double] {
        var lastUse: [ObjectID: Double] = [:]
        var walk = TreeWalk(skippingWalkedTrees: true)
        for claim in claims.sorted(by: { $0.lastUsed > $1.lastUsed }) {
            guard let root = claim.root else { continue }
            for id in claim.objectIDs where lastUse[id] == nil { lastUse[id] = claim.lastUsed }
            try walk.walk(root, read: { treeID in
                if lastUse[treeID] == nil { lastUse[treeID] = claim.lastUsed }
                onTree(treeID)
                do {
                    return try store.getTree(treeID)
                } catch let error as any ReportableError {
                    throw BuildFSError.storeUnusable(
                        path: store.location,
                        reason: "\(claim.name) cannot be read (\(error.description)); run `buildfs fsck --repair` first")
                }
            }, visit: { entry in
                if case let .file(_, chunks, _) = entry.content {
                    for chunk in chunks where lastUse[chunk.id] == nil { lastUse[chunk.id] = claim.lastUsed }
                }
            })
        }
        return lastUse
    }
}
