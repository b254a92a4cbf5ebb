import Glibc

/// Every failure buildfs reports to a user, but for failed system calls
/// (SystemCallError). `description` is one line that
/// says what happened and, where there is one, what to do about it.
public enum BuildFSError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The store directory is missing pieces, of another format, or unusable.
    case storeUnusable(path: String, reason: String)
    /// An object in the store is damaged or not what its id says.
    case corruptObject(id: String, reason: String)
    /// An object a snapshot needs is not in the store.
    case missingObject(id: String)
    /// No snapshot matches any of the keys the user asked for.
    case unknownKey([String])
    /// A key the user gave cannot name a snapshot.
    case invalidKey(String, reason: String)
    /// A directory the user gave cannot be used as asked.
    case badTarget(path: String, reason: String)
    /// A remote store failed, refused, or sent something we cannot use.
    case remote(location: String, reason: String)
    /// A snapshot on a remote store written in a format this buildfs no
    /// longer reads.
    case outdatedSnapshot(key: String, location: String)
    /// Anything else the user can fix from the message alone.
    case usage(String)

    public var description: String {
        switch self {
        case let .storeUnusable(path, reason):
            return "store \(path): \(reason)"
        case let .corruptObject(id, reason):
            return "object \(id) in the store is corrupt (\(reason)); run `buildfs fsck --repair` and rebuild the snapshot"
        case let .missingObject(id):
            return "object \(id) is missing from the store; run `buildfs fsck` to see which snapshots are damaged"
        case let .unknownKey(keys):
            let list = keys.map { "'\($0)'" }.joined(separator: ", ")
            return "no snapshot matches \(list); `buildfs snapshots` lists what the store has"
        case let .invalidKey(key, reason):
            return "invalid key '\(key)': \(reason)"
        case let .badTarget(path, reason):
            return "\(path): \(reason)"
        case let .remote(location, reason):
            return "store \(location): \(reason)"
        case let .outdatedSnapshot(key, location):
            return "store \(location): snapshot '\(key)' was saved by an older buildfs (one object per request, no pack map), "
                + "which this version does not read; save it again (the next import or commit under its key replaces it)"
        case let .usage(message):
            return message
        }
    }

}
