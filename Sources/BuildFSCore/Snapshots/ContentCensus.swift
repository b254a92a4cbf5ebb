/// How much distinct file content snapshots hold, for `buildfs stats`.
public enum ContentCensus {
    /// The bytes of the distinct chunks that the files of `refs` are made
    /// of: what the snapshots' contents take after dedup, before
    /// compression. Walks every tree once (shared subtrees once).
    public static func uniqueFileBytes(of refs: [SnapshotRef], in store: any Store) throws -> UInt64 {
        var chunks: [ObjectID: UInt32] = [:]
        var walk = TreeWalk(skippingWalkedTrees: true)
        for root in refs.compactMap(\.rootID) {
            try walk.walk(root, read: { try store.getTree($0) }, visit: { entry in
                if case let .file(_, list, _) = entry.content {
                    for chunk in list { chunks[chunk.id] = chunk.length }
                }
            })
        }
        return chunks.values.reduce(0) { $0 + UInt64($1) }
    }
}
