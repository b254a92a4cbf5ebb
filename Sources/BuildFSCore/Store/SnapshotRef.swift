import Foundation

/// A named snapshot: a key pointing at the root tree of a committed tree,
/// with what `snapshots` and `gc` need to know about it. Stored as JSON.
public struct SnapshotRef: Codable, Hashable, Sendable {
    public var key: String
    /// Hex id of the root tree.
    public var root: String
    /// Seconds since the epoch, with fractions: restore-key lookup takes the
    /// newest by this.
    public var created: Double
    /// Bytes of file contents in the snapshot.
    public var logicalBytes: UInt64
    /// Bytes this snapshot added to the store when it was written (objects
    /// the store did not have), after compression.
    public var addedBytes: UInt64
    public var files: Int
    public var directories: Int
    public var symlinks: Int
    /// Hex id of the stat index that lets a later import or commit of the
    /// same directory skip unchanged files.
    public var statIndex: String?
    /// The directory the snapshot was imported from, to find it as a parent.
    public var source: SourceDirectory?
    /// Key of the snapshot this one was made on top of.
    public var parent: String?
    /// Remote stores: hex id of the pack map, which says in which pack on
    /// the server each object of the snapshot lies (BuildFSRemote.PackMap).
    public var packMap: String?
    /// Hex id of the read trace (ReadTrace): the objects the job that
    /// committed this snapshot read from its mount, in first-read order.
    public var readTrace: String?
    /// Last time a mount or export used it: kept outside the JSON (the ref
    /// file's mtime) so that marking use never rewrites the ref.
    public var lastUsed: Double = 0

    enum CodingKeys: String, CodingKey {
        case key, root, created, logicalBytes, addedBytes, files, directories, symlinks, statIndex, source, parent, packMap, readTrace
    }

    public init(key: String, root: ObjectID, created: Double, logicalBytes: UInt64, addedBytes: UInt64,
                files: Int, directories: Int, symlinks: Int, statIndex: ObjectID?, source: SourceDirectory?,
                parent: String?) {
        self.key = key
        self.root = root.hex
        self.created = created
        self.logicalBytes = logicalBytes
        self.addedBytes = addedBytes
        self.files = files
        self.directories = directories
        self.symlinks = symlinks
        self.statIndex = statIndex?.hex
        self.source = source
        self.parent = parent
        self.lastUsed = created
    }

    public var rootID: ObjectID? { ObjectID(hex: root) }
    public var statIndexID: ObjectID? { statIndex.flatMap { ObjectID(hex: $0) } }
    public var packMapID: ObjectID? { packMap.flatMap { ObjectID(hex: $0) } }
    public var readTraceID: ObjectID? { readTrace.flatMap { ObjectID(hex: $0) } }

    /// Every object id the ref names directly (the pack map is not an
    /// object of the snapshot: it lists them).
    public var objectIDs: [ObjectID] { [rootID, statIndexID, readTraceID].compactMap { $0 } }
}

/// Identifies an imported directory across imports on one machine.
public struct SourceDirectory: Codable, Hashable, Sendable {
    public var path: String
    public var device: UInt64
    public var inode: UInt64

    public init(path: String, device: UInt64, inode: UInt64) {
        self.path = path
        self.device = device
        self.inode = inode
    }
}

extension SnapshotRef {
    /// Why stored ref bytes are not a usable ref.
    public struct Damage: Error {
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    /// The ref as stores keep it: JSON with sorted keys and a final newline.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Decodes stored ref bytes and checks them: valid JSON, a valid key,
    /// valid object ids. Throws `Damage` saying what is wrong.
    public static func decode(_ bytes: [UInt8]) throws -> SnapshotRef {
        let ref: SnapshotRef
        do {
            ref = try JSONDecoder().decode(SnapshotRef.self, from: Data(bytes))
        } catch {
            throw Damage(reason: "not valid ref JSON")
        }
        do { try SnapshotKey.validate(ref.key) } catch { throw Damage(reason: "invalid key") }
        guard ref.rootID != nil else { throw Damage(reason: "bad root id") }
        guard ref.statIndex == nil || ref.statIndexID != nil else { throw Damage(reason: "bad stat index id") }
        guard ref.packMap == nil || ref.packMapID != nil else { throw Damage(reason: "bad pack map id") }
        guard ref.readTrace == nil || ref.readTraceID != nil else { throw Damage(reason: "bad read trace id") }
        return ref
    }
}
