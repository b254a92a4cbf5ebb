/// Rules for snapshot keys: what a valid key is, and the file name a local
/// store keeps its ref under. Keys are never used as paths: `/`, `..` and
/// other odd bytes are percent-escaped, and long keys are hashed.
public enum SnapshotKey {
    public static let maxLength = 1024

    /// Throws `.invalidKey` unless `key` can name a snapshot.
    public static func validate(_ key: String) throws {
        let bytes = Array(key.utf8)
        if bytes.isEmpty { throw BuildFSError.invalidKey(key, reason: "keys cannot be empty") }
        if bytes.count > maxLength {
            throw BuildFSError.invalidKey(String(key.prefix(40)) + "...", reason: "longer than \(maxLength) bytes")
        }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw BuildFSError.invalidKey(key, reason: "control characters are not allowed")
        }
    }

    /// The ref file name for `key` (see SafeFileName).
    public static func fileName(for key: String) -> String { SafeFileName.escape(key) }
}
