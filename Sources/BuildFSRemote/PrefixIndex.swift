import BuildFSCore
import Foundation

/// A plain HTTP cache can only get and put by name; it cannot list keys.
/// So that `--from PREFIX` finds the newest snapshot whose key starts with
/// PREFIX, a commit also records its ref in index entries: one for every
/// prefix of its key that ends just after a separator (`-_./:+@=,`), and one
/// for the empty prefix (what `buildfs snapshots` lists). Each entry holds
/// the newest `capacity` refs under its prefix, newest first.
///
/// A lookup of PREFIX reads the entry of its longest indexed prefix (PREFIX
/// itself when it ends with a separator, as CI restore keys usually do) and
/// filters it by PREFIX.
///
/// Entries are read, merged and written back; there is no compare-and-swap
/// over HTTP, so two runners committing at once may overwrite each other's
/// entry. The writer therefore reads its entry back and merges again when
/// its ref is missing (see HTTPStore.record). What can still be lost is an
/// index line, never a snapshot: exact keys live in their own entries, and
/// a lost line only makes a prefix lookup pick an older snapshot.
enum PrefixIndex {
    static let separators: Set<UInt8> = Set("-_./:+@=,".utf8)
    static let capacity = 200

    /// The prefixes `key` is indexed under, shortest first ("" included).
    static func prefixes(of key: String) -> [String] {
        let bytes = Array(key.utf8)
        var result = [""]
        for (i, byte) in bytes.enumerated() where separators.contains(byte) && i + 1 < bytes.count {
            result.append(String(decoding: bytes[...i], as: UTF8.self))
        }
        return result
    }

    /// The indexed prefix whose entry answers a lookup of `prefix`.
    static func entryPrefix(for prefix: String) -> String {
        let bytes = Array(prefix.utf8)
        guard let last = bytes.lastIndex(where: { separators.contains($0) }) else { return "" }
        return String(decoding: bytes[...last], as: UTF8.self)
    }

    /// Where the entry for `prefix` lives in the server's action cache.
    static func entryID(for prefix: String) -> ObjectID {
        ObjectID.hashing(Array("buildfs prefix index v1\n\(prefix)".utf8))
    }

    /// Where the ref for `key` lives in the server's action cache.
    static func refID(for key: String) -> ObjectID {
        ObjectID.hashing(Array("buildfs ref v1\n\(key)".utf8))
    }

    struct Entry: Codable {
        var prefix: String
        var refs: [SnapshotRef]
    }

    static func decode(_ bytes: [UInt8], prefix: String) -> [SnapshotRef]? {
        guard let entry = try? JSONDecoder().decode(Entry.self, from: Data(bytes)), entry.prefix == prefix else { return nil }
        // Each line is checked like a ref of its own.
        return entry.refs.compactMap { ref in
            guard ref.key.utf8.starts(with: prefix.utf8), (try? SnapshotRef.decode(try ref.encoded())) != nil else { return nil }
            return ref
        }
    }

    static func encode(_ refs: [SnapshotRef], prefix: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(Entry(prefix: prefix, refs: refs)))
    }

    /// `refs` with `ref` added (replacing an older ref of the same key, but
    /// not a newer one), newest first, at most `capacity`.
    static func merging(_ ref: SnapshotRef, into refs: [SnapshotRef]) -> [SnapshotRef] {
        if refs.contains(where: { $0.key == ref.key && $0.created > ref.created }) { return refs }
        var merged = refs.filter { $0.key != ref.key }
        merged.append(ref)
        merged.sort { ($0.created, $0.key) > ($1.created, $1.key) }
        return Array(merged.prefix(capacity))
    }
}
