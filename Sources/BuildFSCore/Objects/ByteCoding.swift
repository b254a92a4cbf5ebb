/// Appends the fields of binary formats (trees, stat indexes): LEB128
/// varints, fixed 32-byte ids, length-prefixed byte strings.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func raw(_ data: [UInt8]) { bytes.append(contentsOf: data) }

    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func varint(_ value: Int) { varint(UInt64(value)) }

    /// Signed values, zigzag-encoded so small negatives stay short.
    public mutating func signedVarint(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func id(_ id: ObjectID) { bytes.append(contentsOf: id.bytes) }

    public mutating func lengthPrefixed(_ data: [UInt8]) {
        varint(data.count)
        bytes.append(contentsOf: data)
    }
}

/// Reads what `ByteWriter` wrote, refusing anything out of bounds: the bytes
/// come from a store that other machines write to, so they are untrusted.
public struct ByteReader {
    let bytes: [UInt8]
    public private(set) var offset = 0
    /// Names the object in errors.
    let objectID: ObjectID

    public init(_ bytes: [UInt8], objectID: ObjectID) {
        self.bytes = bytes
        self.objectID = objectID
    }

    public var remaining: Int { bytes.count - offset }

    public func malformed(_ reason: String) -> BuildFSError {
        .corruptObject(id: objectID.hex, reason: reason)
    }

    public mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw malformed("ends early") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func raw(_ count: Int) throws -> [UInt8] {
        guard count >= 0, count <= remaining else { throw malformed("ends early") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            let b = try byte()
            if shift == 63 && b > 1 { throw malformed("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << UInt64(shift)
            if b & 0x80 == 0 { return result }
        }
        throw malformed("varint longer than 10 bytes")
    }

    /// A varint that must fit in `0...limit`.
    public mutating func count(atMost limit: Int, _ what: String) throws -> Int {
        let value = try varint()
        guard value <= UInt64(limit) else { throw malformed("\(what) \(value) exceeds \(limit)") }
        return Int(value)
    }

    public mutating func uint32(_ what: String) throws -> UInt32 {
        UInt32(try count(atMost: Int(UInt32.max), what))
    }

    public mutating func signedVarint() throws -> Int64 {
        let v = try varint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    public mutating func id() throws -> ObjectID {
        guard remaining >= ObjectID.byteCount else { throw malformed("ends early") }
        defer { offset += ObjectID.byteCount }
        return bytes.withUnsafeBytes {
            ObjectID(digestBytes: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + ObjectID.byteCount]))
        }
    }

    public mutating func lengthPrefixed(atMost limit: Int, _ what: String) throws -> [UInt8] {
        try raw(try count(atMost: min(limit, remaining), what))
    }
}
