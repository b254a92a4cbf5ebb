/// Where an object sits inside a pack: which block, and which bytes of the
/// block's decoded content.
public struct PackSlot: Hashable, Sendable {
    public var blockOffset: UInt64
    public var blockLength: UInt32
    public var offsetInBlock: UInt32
    public var length: UInt32

    public init(blockOffset: UInt64, blockLength: UInt32, offsetInBlock: UInt32, length: UInt32) {
        self.blockOffset = blockOffset
        self.blockLength = blockLength
        self.offsetInBlock = offsetInBlock
        self.length = length
    }

    /// Object `id`'s bytes cut from its decoded block, checked against the id.
    public func object(in block: [UInt8], id: ObjectID) throws -> [UInt8] {
        let end = Int(offsetInBlock) + Int(length)
        guard end <= block.count else { throw BuildFSError.corruptObject(id: id.hex, reason: "slot outside its block") }
        // An object alone in its block is the block: no copy.
        let content = offsetInBlock == 0 && end == block.count ? block : Array(block[Int(offsetInBlock)..<end])
        guard ObjectID.hashing(content) == id else {
            throw BuildFSError.corruptObject(id: id.hex, reason: "content does not hash to its id")
        }
        return content
    }
}

/// The index file written next to each pack (`<name>.idx` beside
/// `<name>.pack`): every object of the pack and its slot. A pack without its
/// index is unfinished and ignored (a writer killed mid-pack leaves one).
///
///     "BFSx", version 1, varint count, then sorted by id:
///     32-byte id, varint block offset, varint block length,
///     varint offset in block, varint length
///     and last, the SHA-256 of everything before it
public enum PackIndex {
    static let magic: [UInt8] = Array("BFSx".utf8)
    static let version: UInt8 = 1

    public static func encode(_ entries: [(ObjectID, PackSlot)]) -> [UInt8] {
        var w = ByteWriter(capacity: entries.count * 44 + 48)
        w.raw(magic)
        w.byte(version)
        w.varint(entries.count)
        for (id, slot) in entries.sorted(by: { $0.0 < $1.0 }) {
            w.id(id)
            w.varint(slot.blockOffset)
            w.varint(UInt64(slot.blockLength))
            w.varint(UInt64(slot.offsetInBlock))
            w.varint(UInt64(slot.length))
        }
        let checksum = ObjectID.hashing(w.bytes)
        w.id(checksum)
        return w.bytes
    }

    /// Decodes an index read from the store; `name` names it in errors.
    public static func decode(_ bytes: [UInt8], name: String) throws -> [(ObjectID, PackSlot)] {
        func damaged(_ reason: String) -> BuildFSError {
            .storeUnusable(path: name, reason: "damaged pack index: \(reason)")
        }
        guard bytes.count >= 4 + 1 + 1 + ObjectID.byteCount else { throw damaged("too short") }
        let body = Array(bytes[0..<bytes.count - ObjectID.byteCount])
        let stored = bytes[(bytes.count - ObjectID.byteCount)...].withUnsafeBytes { ObjectID(digestBytes: $0) }
        guard ObjectID.hashing(body) == stored else { throw damaged("checksum mismatch") }
        var r = ByteReader(body, objectID: stored)
        do {
            guard try r.raw(4) == magic else { throw damaged("not a pack index") }
            let version = try r.byte()
            guard version == PackIndex.version else { throw damaged("unknown version \(version)") }
            let count = try r.count(atMost: r.remaining / (ObjectID.byteCount + 4), "entry count")
            let maxBlock = BlockCodec.maxEncodedLength(BlockCodec.maxContentLength)
            var entries: [(ObjectID, PackSlot)] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let id = try r.id()
                let blockOffset = try r.varint()
                let blockLength = try r.count(atMost: maxBlock, "block length")
                let offset = try r.count(atMost: BlockCodec.maxContentLength, "offset")
                let length = try r.count(atMost: BlockCodec.maxContentLength - offset, "length")
                entries.append((id, PackSlot(blockOffset: blockOffset, blockLength: UInt32(blockLength),
                                             offsetInBlock: UInt32(offset), length: UInt32(length))))
            }
            guard r.remaining == 0 else { throw damaged("trailing bytes") }
            return entries
        } catch let error as BuildFSError {
            if case .corruptObject(_, let reason) = error { throw damaged(reason) }
            throw error
        }
    }
}
