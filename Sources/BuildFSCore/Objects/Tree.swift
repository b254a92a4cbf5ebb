/// A point in time to the nanosecond, as file systems keep mtimes.
public struct Timestamp: Hashable, Comparable, Sendable {
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

/// One chunk of a file: its object id and its uncompressed length, so a
/// reader can find the chunk holding an offset without fetching any.
public struct ChunkRef: Hashable, Sendable {
    public var id: ObjectID
    public var length: UInt32

    public init(id: ObjectID, length: UInt32) {
        self.id = id
        self.length = length
    }
}

/// What a tree entry is, with what only that kind has.
public enum EntryContent: Hashable, Sendable {
    /// `linkGroup` is 0 for a file with one name in the snapshot; entries with
    /// the same non-zero group are hard links of one file.
    case file(size: UInt64, chunks: [ChunkRef], linkGroup: UInt64)
    case directory(ObjectID)
    case symlink(target: [UInt8])
}

public struct TreeEntry: Hashable, Sendable {
    /// Raw bytes, as Linux names are: not necessarily UTF-8.
    public var name: [UInt8]
    /// Permission bits including setuid, setgid and sticky (mode & 0o7777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var mtime: Timestamp
    public var content: EntryContent

    public init(name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, mtime: Timestamp, content: EntryContent) {
        self.name = name
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.content = content
    }

    public var nameString: String { String(decoding: name, as: UTF8.self) }

    /// Logical bytes: file contents (what `du --apparent-size` counts).
    public var fileSize: UInt64 {
        if case let .file(size, _, _) = content { return size }
        return 0
    }
}

/// One directory of a snapshot, entries sorted by name bytes. Its encoding is
/// deterministic, so equal directories get equal ids and unchanged subtrees
/// are stored once across snapshots.
///
///     "BFSt", version 1, varint entry count, then per entry:
///     name (varint length + bytes), kind (1 file, 2 dir, 3 symlink),
///     mode, uid, gid (varints), mtime (zigzag varint seconds, varint ns),
///     file:    varint size, varint link group, varint chunk count,
///              per chunk: 32-byte id, varint length
///     dir:     32-byte subtree id
///     symlink: varint length + target bytes
public struct Tree: Hashable, Sendable {
    public private(set) var entries: [TreeEntry]

    static let magic: [UInt8] = Array("BFSt".utf8)
    static let version: UInt8 = 1
    public static let maxNameLength = 255
    public static let maxSymlinkTarget = 4095

    /// Sorts `entries` by name. Names must be valid and unique.
    public init(entries: [TreeEntry]) {
        self.entries = entries.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    /// Roughly the memory a decoded tree takes, for caches.
    public var approximateBytes: Int { entries.count * 128 + 64 }

    public func entry(named name: [UInt8]) -> TreeEntry? {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].name == name { return entries[mid] }
            if entries[mid].name.lexicographicallyPrecedes(name) { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// Why `name` cannot be an entry name, or nil when it can.
    public static func problem(withName name: [UInt8]) -> String? {
        if name.isEmpty { return "empty name" }
        if name.count > maxNameLength { return "name longer than \(maxNameLength) bytes" }
        if name == [0x2E] || name == [0x2E, 0x2E] { return "name '\(String(decoding: name, as: UTF8.self))'" }
        if name.contains(0x2F) { return "name containing '/'" }
        if name.contains(0) { return "name containing NUL" }
        return nil
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + entries.count * 96)
        w.raw(Tree.magic)
        w.byte(Tree.version)
        w.varint(entries.count)
        for e in entries {
            w.lengthPrefixed(e.name)
            switch e.content {
            case .file: w.byte(1)
            case .directory: w.byte(2)
            case .symlink: w.byte(3)
            }
            w.varint(UInt64(e.mode))
            w.varint(UInt64(e.uid))
            w.varint(UInt64(e.gid))
            w.signedVarint(e.mtime.seconds)
            w.varint(UInt64(e.mtime.nanoseconds))
            switch e.content {
            case let .file(size, chunks, linkGroup):
                w.varint(size)
                w.varint(linkGroup)
                w.varint(chunks.count)
                for c in chunks {
                    w.id(c.id)
                    w.varint(UInt64(c.length))
                }
            case let .directory(id):
                w.id(id)
            case let .symlink(target):
                w.lengthPrefixed(target)
            }
        }
        return w.bytes
    }

    /// Decodes and validates a tree read from a store. Refuses names that
    /// could escape a directory, duplicates, and sizes that do not add up.
    public static func decode(_ bytes: [UInt8], id: ObjectID) throws -> Tree {
        var r = ByteReader(bytes, objectID: id)
        guard try r.raw(4) == magic else { throw r.malformed("not a tree") }
        let version = try r.byte()
        guard version == Tree.version else { throw r.malformed("unknown tree format version \(version)") }
        // Every entry takes at least 10 bytes: a bound before allocating.
        let count = try r.count(atMost: r.remaining / 10, "entry count")
        var entries: [TreeEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let name = try r.lengthPrefixed(atMost: maxNameLength, "name length")
            if let problem = problem(withName: name) { throw r.malformed("entry with \(problem)") }
            if let last = entries.last, !last.name.lexicographicallyPrecedes(name) {
                throw r.malformed("entries not sorted or duplicated at '\(String(decoding: name, as: UTF8.self))'")
            }
            let kind = try r.byte()
            let mode = try r.uint32("mode")
            guard mode <= 0o7777 else { throw r.malformed("mode \(String(mode, radix: 8)) has non-permission bits") }
            let uid = try r.uint32("uid")
            let gid = try r.uint32("gid")
            let seconds = try r.signedVarint()
            let nanoseconds = try r.count(atMost: 999_999_999, "nanoseconds")
            let content: EntryContent
            switch kind {
            case 1:
                let size = try r.varint()
                let linkGroup = try r.varint()
                let chunkCount = try r.count(atMost: r.remaining / (ObjectID.byteCount + 1), "chunk count")
                var chunks: [ChunkRef] = []
                chunks.reserveCapacity(chunkCount)
                var total: UInt64 = 0
                for _ in 0..<chunkCount {
                    let chunkID = try r.id()
                    let length = try r.count(atMost: FastCDC.maxSize, "chunk length")
                    guard length > 0 else { throw r.malformed("empty chunk") }
                    chunks.append(ChunkRef(id: chunkID, length: UInt32(length)))
                    total += UInt64(length)
                }
                guard total == size else { throw r.malformed("chunks of '\(String(decoding: name, as: UTF8.self))' add up to \(total), size says \(size)") }
                content = .file(size: size, chunks: chunks, linkGroup: linkGroup)
            case 2:
                content = .directory(try r.id())
            case 3:
                let target = try r.lengthPrefixed(atMost: maxSymlinkTarget, "symlink length")
                guard !target.isEmpty, !target.contains(0) else { throw r.malformed("bad symlink target") }
                content = .symlink(target: target)
            default:
                throw r.malformed("unknown entry kind \(kind)")
            }
            entries.append(TreeEntry(name: name, mode: mode, uid: uid, gid: gid,
                                     mtime: Timestamp(seconds: seconds, nanoseconds: UInt32(nanoseconds)),
                                     content: content))
        }
        guard r.remaining == 0 else { throw r.malformed("\(r.remaining) trailing bytes") }
        var tree = Tree(entries: [])
        tree.entries = entries
        return tree
    }
}
