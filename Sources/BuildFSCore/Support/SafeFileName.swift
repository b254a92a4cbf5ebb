/// Turns any string (a snapshot key, a mount point path) into one safe file
/// name: letters, digits, `-`, `_` and `.` (not leading) stay, every other
/// byte becomes %XX, and names over 200 bytes become `~` and their SHA-256.
/// Never `.`, `..`, empty, or containing `/`.
public enum SafeFileName {
    public static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        let hexDigits = Array("0123456789ABCDEF".utf8)
        for (i, b) in text.utf8.enumerated() {
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
        if out.count > 200 || out.isEmpty {
            return "~" + ObjectID.hashing(Array(text.utf8)).hex
        }
        return String(decoding: out, as: UTF8.self)
    }
}
