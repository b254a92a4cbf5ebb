import Glibc
import Synchronization

/// Identity of a file in the upper directory.
public struct InodeKey: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

/// The snapshot layered under an upper directory, laid into it lazily so
/// that the upper directory stays the one namespace the mount serves (the
/// format is UpperLayout's). No FUSE here: the mount calls in as the
/// kernel asks, and tests call in directly.
///
/// - a directory of the snapshot becomes a *pending* upper directory
///   carrying its tree id until first used; then it is *expanded*: its
///   entries are created (subdirectories pending the same way, symlinks as
///   symlinks, files as stubs), and the mark removed;
/// - a file becomes a *stub*: a sparse upper file with the snapshot's size,
///   mode, owner and mtime, marked with its tree entry. Reads are served
///   from the store; the first write or truncate *copies it up* (fills in
///   its bytes, drops the mark);
/// - hard links of the snapshot share one stub inode, linked also into
///   `.buildfs-internal/links/GROUP` so that names in other directories find
///   it (that extra link is hidden from st_nlink).
///
/// Deleting or renaming a snapshot entry is then a plain upper operation
/// that survives a daemon restart, and a commit reuses stubs' chunk lists
/// and pending directories' tree ids without reading them.
public final class SnapshotLayer: Sendable {
    let store: any Store
    public let root: ObjectID
    public let key: String
    let trees = ByteBudgetCache<ObjectID, Tree>(budget: 32 << 20)
    let chunks = ByteBudgetCache<ObjectID, [UInt8]>(budget: 64 << 20)
    public let counters = MountCounters()
    /// O_PATH descriptor of the link index (UpperLayout.linksDirectory).
    let linksFD: Int32
    let linkIndexLock = Mutex<Void>(())
    /// What this mount read of the snapshot, for the next commit.
    let trace: ReadTraceRecorder
    /// Stubs created and not looked up yet, with what their xattrs say,
    /// so that the lookup that soon follows need not read the two xattrs
    /// back through /proc (a sixth of a fresh mount's first read of every
    /// file). Nothing else changes a stub before its first lookup: every
    /// change comes through an inode, whose layer state is loaded first.
    /// Bounded: when `maxStubNotes` notes wait (the expansion runs a
    /// level ahead of a walk that may never come), they are all dropped and
    /// noting starts over; a lookup without a note reads the xattrs.
    private let stubNotes = Mutex<[InodeKey: StubNote]>([:])
    private static let maxStubNotes = 16384

    public struct StubNote: Sendable {
        public var stub: StubReference
        public var indexed: Bool
    }

    init(store: any Store, root: ObjectID, key: String, linksFD: Int32, trace: ReadTraceRecorder) {
        self.store = store
        self.root = root
        self.key = key
        self.linksFD = linksFD
        self.trace = trace
    }

    public func tree(_ id: ObjectID) throws -> Tree {
        if let cached = trees.get(id) { return cached }
        // Only misses are traced: nothing else fills this cache, so an
        // object's first read is always one (and a hit costs no lock).
        trace.record(id)
        let tree = try store.getTree(id)
        trees.insert(id, tree, cost: tree.approximateBytes)
        return tree
    }

    /// A chunk's verified bytes, from the cache or the store.
    public func chunk(_ ref: ChunkRef) throws -> [UInt8] {
        if let cached = chunks.get(ref.id) {
            counters.chunkHits.add(1, ordering: .relaxed)
            return cached
        }
        counters.chunkMisses.add(1, ordering: .relaxed)
        trace.record(ref.id) // a first read is always a miss, as for trees
        if !store.isLocal(ref.id) { counters.chunksFetchedOnRead.add(1, ordering: .relaxed) }
        let bytes = try store.get(ref.id, maxLength: Int(ref.length))
        guard bytes.count == Int(ref.length) else {
            throw BuildFSError.corruptObject(id: ref.id.hex, reason: "is \(bytes.count) bytes, the tree says \(ref.length)")
        }
        chunks.insert(ref.id, bytes, cost: bytes.count)
        return bytes
    }

    /// Notes the stub just created as `fd` (see `stubNotes`); returns its key.
    func noteStub(_ fd: Int32, stub: StubReference, indexed: Bool) -> InodeKey? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        stubNotes.withLock { stubNotes in
            if stubNotes.count >= SnapshotLayer.maxStubNotes { stubNotes.removeAll(keepingCapacity: true) }
            stubNotes[key] = StubNote(stub: stub, indexed: indexed)
        }
        return key
    }

    /// Forgets notes of stubs an expansion that failed midway made: the
    /// next one deletes them, and their inode numbers may come back as
    /// other files.
    func forgetStubNotes(_ keys: [InodeKey]) {
        stubNotes.withLock { stubNotes in for key in keys { stubNotes[key] = nil } }
    }

    /// What the expansion noted of the file `key`, once.
    public func takeStubNote(_ key: InodeKey) -> StubNote? {
        stubNotes.withLock { $0.removeValue(forKey: key) }
    }

    /// The chunk list of the file a stub stands for.
    public func chunkList(of stub: StubReference) throws -> [ChunkRef] {
        guard case let .file(_, list, _)? = try tree(stub.tree).entry(named: stub.name)?.content else {
            throw BuildFSError.corruptObject(id: stub.tree.hex, reason: "has no file '\(String(decoding: stub.name, as: UTF8.self))'")
        }
        return list
    }
}

/// What a mount did with its snapshot, for `buildfs stats`.
public final class MountCounters: Sendable {
    public let bytesServed = Atomic<UInt64>(0)
    public let chunkHits = Atomic<UInt64>(0)
    public let chunkMisses = Atomic<UInt64>(0)
    /// Misses a remote store had not fetched yet: the read waited for the network.
    public let chunksFetchedOnRead = Atomic<UInt64>(0)
    public let filesCopiedUp = Atomic<UInt64>(0)
    public let directoriesExpanded = Atomic<UInt64>(0)
    /// Stubs whose bytes were put into the kernel's page cache whole.
    public let filesFilled = Atomic<UInt64>(0)

    public var values: [String: UInt64] {
        ["bytesServedFromStore": bytesServed.load(ordering: .relaxed),
         "chunkCacheHits": chunkHits.load(ordering: .relaxed),
         "chunkCacheMisses": chunkMisses.load(ordering: .relaxed),
         "chunksFetchedOnRead": chunksFetchedOnRead.load(ordering: .relaxed),
         "filesCopiedUp": filesCopiedUp.load(ordering: .relaxed),
         "directoriesExpanded": directoriesExpanded.load(ordering: .relaxed),
         "filesPutInPageCache": filesFilled.load(ordering: .relaxed)]
    }
}
