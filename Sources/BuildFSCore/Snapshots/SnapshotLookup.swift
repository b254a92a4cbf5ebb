/// Finds the snapshot a list of keys names, the way CI caches treat
/// `key` + `restore-keys`: each candidate in order, first as an exact key,
/// then as a prefix matching the newest snapshot whose key starts with it.
public enum SnapshotLookup {
    public static func find(_ candidates: [String], in store: any Store) throws -> SnapshotRef {
        guard !candidates.isEmpty else { throw BuildFSError.usage("no key given: pass --from KEY") }
        for candidate in candidates {
            try SnapshotKey.validate(candidate)
            if let exact = try store.readRef(key: candidate) { return exact }
            if let newest = newest(withPrefix: candidate, in: try store.refs(withPrefix: candidate)) { return newest }
        }
        throw BuildFSError.unknownKey(candidates)
    }

    /// The newest ref whose key starts with `prefix` (byte-wise, not by
    /// Unicode grapheme as String.hasPrefix would).
    public static func newest(withPrefix prefix: String, in refs: [SnapshotRef]) -> SnapshotRef? {
        refs.filter { $0.key.utf8.starts(with: prefix.utf8) }
            .max { ($0.created, $0.key) < ($1.created, $1.key) }
    }
}
