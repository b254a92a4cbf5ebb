import Crypto

/// The id of a stored object: the SHA-256 of its uncompressed bytes, the same
/// digest Bazel's content-addressed store uses, so a remote CAS can hold our
/// objects unchanged.
public struct ObjectID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The digest as four big-endian words, so ids compare like their hex.
    public let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let byteCount = 32

    /// `bytes` must hold exactly 32 bytes.
    public init(digestBytes bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == ObjectID.byteCount)
        func word(_ i: Int) -> UInt64 {
            var value: UInt64 = 0
            for k in 0..<8 { value = value << 8 | UInt64(bytes[i * 8 + k]) }
            return value
        }
        w0 = word(0); w1 = word(1); w2 = word(2); w3 = word(3)
    }

    /// The id of `content`.
    public static func hashing(_ content: UnsafeRawBufferPointer) -> ObjectID {
        SHA256.hash(data: content).withUnsafeBytes { ObjectID(digestBytes: $0) }
    }

    public static func hashing(_ content: [UInt8]) -> ObjectID {
        content.withUnsafeBytes { hashing($0) }
    }

    /// Parses 64 lowercase hex digits.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, c) in utf8.enumerated() {
            let nibble: UInt64
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = UInt64(c - UInt8(ascii: "a") + 10)
            default: return nil
            }
            words[i / 16] = words[i / 16] << 4 | nibble
        }
        w0 = words[0]; w1 = words[1]; w2 = words[2]; w3 = words[3]
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in [w0, w1, w2, w3] {
            for k in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(k))) }
        }
        return out
    }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    /// The id is already a uniform hash: one word of it is as good a hash
    /// key as all four (SipHash over 32 bytes was ~30% of gc's time).
    public func hash(into hasher: inout Hasher) { hasher.combine(w0) }

    public static func < (a: ObjectID, b: ObjectID) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}
