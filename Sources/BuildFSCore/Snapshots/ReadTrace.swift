import Glibc

/// Which objects of its snapshot a mount read, in the order it first read
/// them. The mount appends each id to `fileName` in the upper directory's
/// internal directory as it goes; a commit stores the list with the new
/// snapshot, and the next mount of that snapshot fetches from a remote
/// store in this order, so that a job that reads what the last one read
/// finds it local (eStargz does the same for container images).
///
/// Stored as an object: "BFSr", version 1, varint count, the ids.
public enum ReadTrace {
    /// In `UpperLayout.internalDirectory`: 32-byte ids back to back.
    public static let fileName = "read-trace"
    /// A longer trace is cut: beyond this, order no longer pays for its bytes.
    public static let maxIDs = 1 << 20
    static let magic: [UInt8] = Array("BFSr".utf8)
    static let version: UInt8 = 1

    /// The ids the mount of `upper` recorded, first reads only, in order.
    /// Empty when there is no trace (an import, or nothing was read).
    public static func recorded(inUpper upper: String) -> [ObjectID] {
        let path = upper + "/" + UpperLayout.internalDirectory + "/" + fileName
        guard let file = try? FileDescriptor.open(path, O_RDONLY),
              let bytes = try? file.readAll(limit: maxIDs * ObjectID.byteCount) else { return [] }
        var seen = Set<ObjectID>()
        var ids: [ObjectID] = []
        bytes.withUnsafeBytes { raw in
            // A record torn by a crash at the end is dropped.
            for offset in stride(from: 0, to: raw.count - ObjectID.byteCount + 1, by: ObjectID.byteCount) {
                let id = ObjectID(digestBytes: UnsafeRawBufferPointer(rebasing: raw[offset..<offset + ObjectID.byteCount]))
                if seen.insert(id).inserted { ids.append(id) }
            }
        }
        return ids
    }

    public static func encode(_ ids: [ObjectID]) -> [UInt8] {
        var w = ByteWriter(capacity: ids.count * ObjectID.byteCount + 16)
        w.raw(magic)
        w.byte(version)
        w.varint(ids.count)
        for id in ids { w.id(id) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], id: ObjectID) throws -> [ObjectID] {
        var r = ByteReader(bytes, objectID: id)
        guard try r.raw(4) == magic else { throw r.malformed("not a read trace") }
        let version = try r.byte()
        guard version == ReadTrace.version else { throw r.malformed("unknown read trace version \(version)") }
        let count = try r.count(atMost: r.remaining / ObjectID.byteCount, "id count")
        var ids: [ObjectID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count { ids.append(try r.id()) }
        guard r.remaining == 0 else { throw r.malformed("trailing bytes") }
        return ids
    }
}
