import BuildFSCore

/// Where every object of one snapshot lies on the server: in which pack
/// (a blob of compressed blocks, stored as `cas/<SHA-256 of the pack>`),
/// and where in it (PackSlot, as in the local store's pack indexes). A
/// snapshot's ref names its map, itself a CAS blob, so a restore or a save
/// learns in one request what the server holds for it, and fetches whole
/// blocks with Range requests instead of one request per object.
///
/// A map lists exactly the objects reachable from its snapshot (trees,
/// chunks, stat index, read trace): a restore fetches all of it without
/// walking the trees first.
///
///     "BFSm", version 1,
///     varint pack count, per pack: 32-byte digest, varint size,
///     varint entry count, per entry (sorted by pack, then offsets):
///     32-byte object id, varint (pack number << 1 | 1 for a tree),
///     varint block offset, varint block length, varint offset in block,
///     varint length
///
/// Trees are marked so that a mount fetches all of them (the metadata)
/// first, in one or a few requests.
///
/// No checksum of its own: the map is named by its hash.
struct PackMap: Sendable {
    struct Pack: Sendable, Hashable {
        var digest: ObjectID
        var size: UInt64
    }

    struct Entry: Sendable {
        var id: ObjectID
        var pack: Int
        var slot: PackSlot
        var isTree = false
    }

    static let magic: [UInt8] = Array("BFSm".utf8)
    static let version: UInt8 = 1
    /// No pack is bigger than this; a map claiming more is damaged.
    static let maxPackSize: UInt64 = 1 << 34

    var packs: [Pack] = []
    var entries: [Entry] = []

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: packs.count * 40 + entries.count * 48 + 16)
        w.raw(PackMap.magic)
        w.byte(PackMap.version)
        w.varint(packs.count)
        for pack in packs {
            w.id(pack.digest)
            w.varint(pack.size)
        }
        w.varint(entries.count)
        let sorted = entries.sorted {
            ($0.pack, $0.slot.blockOffset, $0.slot.offsetInBlock) < ($1.pack, $1.slot.blockOffset, $1.slot.offsetInBlock)
        }
        for entry in sorted {
            w.id(entry.id)
            w.varint(entry.pack << 1 | (entry.isTree ? 1 : 0))
            w.varint(entry.slot.blockOffset)
            w.varint(UInt64(entry.slot.blockLength))
            w.varint(UInt64(entry.slot.offsetInBlock))
            w.varint(UInt64(entry.slot.length))
        }
        return w.bytes
    }

    /// Decodes a map fetched from the server (already checked against its
    /// id) and checks that every slot lies inside its pack.
    static func decode(_ bytes: [UInt8], id: ObjectID) throws -> PackMap {
        var r = ByteReader(bytes, objectID: id)
        guard try r.raw(4) == magic else { throw r.malformed("not a pack map") }
        let version = try r.byte()
        guard version == PackMap.version else { throw r.malformed("unknown pack map version \(version)") }
        var map = PackMap()
        let packCount = try r.count(atMost: r.remaining / (ObjectID.byteCount + 1), "pack count")
        for _ in 0..<packCount {
            let digest = try r.id()
            let size = try r.varint()
            guard size <= maxPackSize else { throw r.malformed("pack of \(size) bytes") }
            map.packs.append(Pack(digest: digest, size: size))
        }
        let maxBlock = BlockCodec.maxEncodedLength(BlockCodec.maxContentLength)
        let entryCount = try r.count(atMost: r.remaining / (ObjectID.byteCount + 5), "entry count")
        map.entries.reserveCapacity(entryCount)
        for _ in 0..<entryCount {
            let object = try r.id()
            let packAndKind = try r.count(atMost: max(2 * packCount - 1, 0), "pack number")
            let pack = packAndKind >> 1
            guard pack < packCount else { throw r.malformed("entry without a pack") }
            let blockOffset = try r.varint()
            let blockLength = try r.count(atMost: maxBlock, "block length")
            let offset = try r.count(atMost: BlockCodec.maxContentLength, "offset")
            let length = try r.count(atMost: BlockCodec.maxContentLength - offset, "length")
            guard blockOffset <= map.packs[pack].size, UInt64(blockLength) <= map.packs[pack].size - blockOffset else {
                throw r.malformed("block outside its pack")
            }
            map.entries.append(Entry(id: object, pack: pack, slot: PackSlot(
                blockOffset: blockOffset, blockLength: UInt32(blockLength),
                offsetInBlock: UInt32(offset), length: UInt32(length)), isTree: packAndKind & 1 == 1))
        }
        guard r.remaining == 0 else { throw r.malformed("trailing bytes") }
        return map
    }
}
