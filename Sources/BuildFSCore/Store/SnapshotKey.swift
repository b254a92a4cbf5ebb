import Crypto

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

    /// The ref file name for `key`: letters, digits, `-`, `_` and `.` (not
    /// leading) stay, everything else becomes %XX; over 200 bytes, `~` and
    /// the SHA-256 of the key.
    public static func fileName(for key: String) -> String {
        var out: [UInt8] = []
        let hexDigits = Array("0123456789ABCDEF".utf8)
        for (i, b) in key.utf8.enumerated() {
            let plain = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2D || b == 0x5F || (b == 0x2E && i > 0)
            if plain {
                out.append(b)
            } else {
                out.append(0x25)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            }
        }
        if out.count > 200 {
            return "~" + ObjectID.hashing(Array(key.utf8)).hex
        }
        return String(decoding: out, as: UTF8.self)
    }
}
