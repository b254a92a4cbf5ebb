import BuildFSCore
import CLinuxCalls
import Foundation
import Glibc
import Synchronization

/// The snapshot under a mount, and how it is laid into the upper directory
/// lazily so that the upper directory stays the one namespace the
/// passthrough serves:
///
/// - a directory of the snapshot becomes an upper directory carrying the
///   xattr `trusted.buildfs.tree` (its tree id) until first used; then it is
///   *expanded*: its entries are created (subdirectories pending the same
///   way, symlinks as symlinks, files as stubs), and the xattr removed;
/// - a file becomes a *stub*: a sparse upper file with the snapshot's size,
///   mode, owner and mtime, and the xattr `trusted.buildfs.stub` naming its
///   tree entry. Reads are served from the store; the first write or
///   truncate *hydrates* it (fills in its bytes, drops the xattr);
/// - hard links of the snapshot share one stub inode, linked also into
///   `.buildfs-internal/links/GROUP` so that names in other directories find
///   it (that extra link is hidden from st_nlink).
///
/// Deleting or renaming a snapshot entry is then a plain upper operation
/// that survives a daemon restart, and a commit reuses stubs' chunk lists
/// and pending directories' tree ids without reading them.
public final class LowerSnapshot: Sendable {
    static let treeAttribute = UpperLayout.treeAttribute
    static let stubAttribute = UpperLayout.stubAttribute
    static let indexedAttribute = UpperLayout.indexedAttribute
    static let snapshotAttribute = UpperLayout.snapshotAttribute
    /// Hidden at the mount's root.
    public static let internalDirectory = UpperLayout.internalDirectory

    let store: any Store
    public let root: ObjectID
    public let key: String
    let trees = ByteBudgetCache<ObjectID, Tree>(budget: 32 << 20)
    let chunks = ByteBudgetCache<ObjectID, [UInt8]>(budget: 64 << 20)
    public let counters = MountCounters()
    /// O_PATH descriptor of `.buildfs-internal/links` in the upper root.
    let linksFD: Int32
    let linkIndexLock = Mutex<Void>(())
    /// What this mount read of the snapshot, for the next commit.
    let trace: ReadTraceRecorder
    /// Stubs laid out and not looked up yet, with what their xattrs say,
    /// so that the lookup that soon follows need not read the two xattrs
    /// back through /proc (a sixth of a fresh mount's first read of every
    /// file). Nothing else changes a stub before its first lookup: every
    /// change comes through an inode, whose lower state is loaded first.
    /// Bounded: when `maxLaidOut` notes wait (the expansion lays out a
    /// level ahead of a walk that may never come), they are all dropped and
    /// noting starts over; a lookup without a note reads the xattrs.
    private let laidOut = Mutex<[InodeKey: LaidOutStub]>([:])
    private static let maxLaidOut = 16384

    struct LaidOutStub {
        var stub: StubReference
        var indexed: Bool
    }

    init(store: any Store, root: ObjectID, key: String, linksFD: Int32, trace: ReadTraceRecorder) {
        self.store = store
        self.root = root
        self.key = key
        self.linksFD = linksFD
        self.trace = trace
    }

    func tree(_ id: ObjectID) throws -> Tree {
        if let cached = trees.get(id) { return cached }
        // Only misses are traced: nothing else fills this cache, so an
        // object's first read is always one (and a hit costs no lock).
        trace.record(id)
        let tree = try store.getTree(id)
        trees.insert(id, tree, cost: tree.entries.count * 128 + 64)
        return tree
    }

    /// A chunk's verified bytes, from the cache or the store.
    func chunk(_ ref: ChunkRef) throws -> [UInt8] {
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

    /// Notes the stub just created as `fd` (see `laidOut`); returns its key.
    func noteLaidOut(_ fd: Int32, stub: StubReference, indexed: Bool) -> InodeKey? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        laidOut.withLock { laidOut in
            if laidOut.count >= LowerSnapshot.maxLaidOut { laidOut.removeAll(keepingCapacity: true) }
            laidOut[key] = LaidOutStub(stub: stub, indexed: indexed)
        }
        return key
    }

    /// Forgets notes of stubs an expansion that failed midway made: the
    /// next one deletes them, and their inode numbers may come back as
    /// other files.
    func forgetLaidOut(_ keys: [InodeKey]) {
        laidOut.withLock { laidOut in for key in keys { laidOut[key] = nil } }
    }

    /// What the expansion noted of the file `key`, once.
    func takeLaidOut(_ key: InodeKey) -> LaidOutStub? {
        laidOut.withLock { $0.removeValue(forKey: key) }
    }

    /// The chunk list of the file a stub stands for.
    func chunkList(of stub: StubReference) throws -> [ChunkRef] {
        guard case let .file(_, list, _)? = try tree(stub.tree).entry(named: stub.name)?.content else {
            throw BuildFSError.corruptObject(id: stub.tree.hex, reason: "has no file '\(String(decoding: stub.name, as: UTF8.self))'")
        }
        return list
    }
}

/// What a mount did, for `buildfs stats`.
public final class MountCounters: Sendable {
    public let bytesServed = Atomic<UInt64>(0)
    public let chunkHits = Atomic<UInt64>(0)
    public let chunkMisses = Atomic<UInt64>(0)
    /// Misses a remote store had not fetched yet: the read waited for the network.
    public let chunksFetchedOnRead = Atomic<UInt64>(0)
    public let filesHydrated = Atomic<UInt64>(0)
    public let directoriesExpanded = Atomic<UInt64>(0)

    public var snapshot: [String: UInt64] {
        ["bytesServedFromStore": bytesServed.load(ordering: .relaxed),
         "chunkCacheHits": chunkHits.load(ordering: .relaxed),
         "chunkCacheMisses": chunkMisses.load(ordering: .relaxed),
         "chunksFetchedOnRead": chunksFetchedOnRead.load(ordering: .relaxed),
         "filesCopiedUp": filesHydrated.load(ordering: .relaxed),
         "directoriesExpanded": directoriesExpanded.load(ordering: .relaxed)]
    }
}

// MARK: xattrs

/// Our xattrs, read through an inode's /proc path (which follows to the
/// file itself) and written on real descriptors.
enum Xattr {
    static func get(_ path: String, _ name: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = CLinuxCalls.getxattr(path, name, &buffer, buffer.count)
        return n < 0 ? nil : Array(buffer[0..<n])
    }

    static func set(_ fd: Int32, _ name: String, _ value: [UInt8]) throws {
        try check(CLinuxCalls.fsetxattr(fd, name, value, value.count, 0))
    }

    static func remove(_ path: String, _ name: String) throws {
        if CLinuxCalls.removexattr(path, name) != 0 && errno != ENODATA { throw Errno.current }
    }

    /// Ours are not the user's business.
    static func isInternal(_ name: UnsafePointer<CChar>) -> Bool {
        strncmp(name, "trusted.buildfs.", 16) == 0
    }

    /// A security-module attribute (security.selinux, security.capability, ...).
    static func isSecurityLabel(_ name: UnsafePointer<CChar>) -> Bool {
        strncmp(name, "security.", 9) == 0
    }
}

/// Appends each object id the mount reads for the first time to the upper
/// directory's read trace (ReadTrace), where a commit finds it. One small
/// O_APPEND write per object, not per read; losing the last ids to a crash
/// only makes the next prefetch order less exact.
final class ReadTraceRecorder: Sendable {
    private let fd: Int32
    private let seen = Mutex<Set<ObjectID>>([])

    /// Records into `upper`'s trace file; records nothing if it cannot be opened.
    init(upper: String) {
        let path = upper + "/" + UpperLayout.internalDirectory + "/" + ReadTrace.fileName
        fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    }

    deinit { if fd >= 0 { close(fd) } }

    func record(_ id: ObjectID) {
        guard fd >= 0, seen.withLock({ $0.count < ReadTrace.maxIDs && $0.insert(id).inserted }) else { return }
        _ = id.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
