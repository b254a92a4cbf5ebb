/// What an import saw of each regular file beyond the snapshot's own
/// metadata: device, inode and ctime. A later import of the same directory
/// trusts a file to be unchanged, and reuses its chunk list without reading
/// it, only when path, size, mtime, mode, device, inode and ctime all match
/// (the rule git's index and rsync use). Stored as an object named by the ref.
///
///     "BFSi", version 1, varint count, then sorted by path:
///     path (varint length + bytes), varint device, varint inode,
///     ctime (zigzag varint seconds, varint ns)
public struct StatIndex: Sendable {
    public struct Record: Hashable, Sendable {
        public var device: UInt64
        public var inode: UInt64
        public var ctime: Timestamp

        public init(device: UInt64, inode: UInt64, ctime: Timestamp) {
            self.device = device
            self.inode = inode
            self.ctime = ctime
        }
    }

    /// Relative path (names joined by "/") to record.
    public var records: [[UInt8]: Record] = [:]

    static let magic: [UInt8] = Array("BFSi".utf8)
    static let version: UInt8 = 1

    public init() {}

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: records.count * 48 + 16)
        w.raw(StatIndex.magic)
        w.byte(StatIndex.version)
        w.varint(records.count)
        for (path, record) in records.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            w.lengthPrefixed(path)
            w.varint(record.device)
            w.varint(record.inode)
            w.signedVarint(record.ctime.seconds)
            w.varint(UInt64(record.ctime.nanoseconds))
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], id: ObjectID) throws -> StatIndex {
        var r = ByteReader(bytes, objectID: id)
        guard try r.raw(4) == magic else { throw r.malformed("not a stat index") }
        let version = try r.byte()
        guard version == StatIndex.version else { throw r.malformed("unknown stat index version \(version)") }
        let count = try r.count(atMost: r.remaining / 5, "record count")
        var index = StatIndex()
        index.records.reserveCapacity(count)
        for _ in 0..<count {
            let path = try r.lengthPrefixed(atMost: 64 * 1024, "path length")
            let device = try r.varint()
            let inode = try r.varint()
            let seconds = try r.signedVarint()
            let nanoseconds = try r.count(atMost: 999_999_999, "nanoseconds")
            index.records[path] = Record(device: device, inode: inode,
                                         ctime: Timestamp(seconds: seconds, nanoseconds: UInt32(nanoseconds)))
        }
        guard r.remaining == 0 else { throw r.malformed("trailing bytes") }
        return index
    }
}
