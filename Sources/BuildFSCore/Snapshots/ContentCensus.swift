/// How much distinct file content snapshots hold, for `buildfs stats`.
public enum ContentCensus {
    /// The bytes of the distinct chunks that the files of `refs` are made
    /// of: what the snapshots' contents take after dedup, before
    /// compression. Walks every tree once (shared subtrees once).
    public static func uniqueFileBytes(of refs: [SnapshotRef], in store: any Store) throws -> UInt64 {
        var chunks: [ObjectID: UInt32] = [:]
        var seen = Set<ObjectID>()
        var pending = refs.compactMap(\.rootID)
        while let treeID = pending.popLast() {
            guard seen.insert(treeID).inserted else { continue }
            for entry in try store.getTree(treeID).entries {
                switch entry.content {
                case let .file(_, list, _):
                    for chunk in list { chunks[chunk.id] = chunk.length }
                case let .directory(id):
                    pending.append(id)
                case .symlink:
                    break
                }
            }
        }
        return chunks.values.reduce(0) { $0 + UInt64($1) }
    }
}
