import Foundation
import Glibc
import Synchronization

/// A store in a local directory:
///
///     buildfs-store         "buildfs store format 1"
///     packs/NAME.pack       objects in compressed blocks (BlockCodec)
///     packs/NAME.idx        where each object of NAME.pack is (PackIndex)
///     refs/<escaped key>    one JSON file per snapshot (SnapshotRef)
///     tmp/                  files being written; renamed into place whole
///
/// Objects live in packs rather than one file each: measured on /usr/include,
/// a file per object stored 25% more than tar.zst (small files compressed
/// alone), took 33% more on disk in 4 KiB blocks, and spent most of an
/// import in the kernel on directory locks for the renames.
///
/// Safe to share between processes: every write goes to tmp/ and is renamed
/// into place, so readers see a pack, index or ref whole or not at all.
/// Packs and indexes are fsync'd before they are renamed into place, and a
/// ref only after them.
public final class LocalStore: Store {
    public static let formatVersion = 1
    static let formatFile = "buildfs-store"

    public let root: String
    public var location: String { root }
    let compressionLevel: Int32
    /// False for a cache that can be rebuilt: packs are not fsync'd. A pack
    /// torn by a power cut is caught by the checksums and hashes on read.
    let durable: Bool
    let catalog: PackCatalog
    private let decompressors = ContextPool { ZstdDecompressor() }
    /// Decoded blocks that hold several small objects, so that reading the
    /// neighbours of a small file does not decompress the same block again.
    /// FIFO: reads of one block come close together. 64 full blocks.
    private let blockCache = ByteBudgetCache<BlockKey, [UInt8]>(budget: 64 * PackWriter.blockSize)
    private let blocksDecoding = SingleFlight<BlockKey, [UInt8]>()
    private let packFiles = Mutex<[String: FileDescriptor]>([:])

    /// Opens the store at `path`, creating it if it does not exist (or is an
    /// empty directory). `compressionLevel` applies to objects written.
    public init(path: String, compressionLevel: Int32 = Zstd.defaultLevel, durable: Bool = true) throws {
        root = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.compressionLevel = compressionLevel
        self.durable = durable
        try LocalStore.prepare(root)
        catalog = try PackCatalog(directory: root + "/packs")
    }

    /// Creates the layout if needed and checks the format version. Creation
    /// is idempotent, so processes creating one store at once all succeed:
    /// the directories first, the format file last (renamed into place), and
    /// a directory holding only those pieces counts as a store being made.
    private static func prepare(_ root: String) throws {
        if try checkFormat(root) { return }
        try makeDirectories(root)
        let layout: Set<String> = ["packs", "refs", "tmp", "lock"]
        let strangers = try FileDescriptor.open(root, O_RDONLY | O_DIRECTORY).directoryEntries()
            .map { String(decoding: $0, as: UTF8.self) }
            .filter { !layout.contains($0) && !$0.hasPrefix(".format-") && $0 != formatFile }
        guard strangers.isEmpty else {
            throw BuildFSError.storeUnusable(
                path: root, reason: "directory is not empty and has no \(formatFile) file: not a buildfs store; use a new or empty directory")
        }
        for dir in ["packs", "refs", "tmp"] { try makeDirectories(root + "/" + dir) }
        let temp = root + "/.format-" + uniqueName()
        try writeFile(temp, Array("buildfs store format \(formatVersion)\n".utf8), durable: true)
        guard rename(temp, root + "/" + formatFile) == 0 else {
            let err = errno
            unlink(temp)
            throw SystemCallError("create store", root, code: err)
        }
        guard try checkFormat(root) else {
            throw BuildFSError.storeUnusable(path: root, reason: "could not be created")
        }
    }

    /// True when `root` holds a store of our format; throws for another.
    private static func checkFormat(_ root: String) throws -> Bool {
        guard let text = try? String(contentsOfFile: root + "/" + formatFile, encoding: .utf8) else { return false }
        let words = text.split(whereSeparator: \.isWhitespace)
        guard words.count == 4, words[0] == "buildfs", words[1] == "store", words[2] == "format",
              let version = Int(words[3]) else {
            throw BuildFSError.storeUnusable(path: root, reason: "\(formatFile) is not a buildfs format file")
        }
        guard version == formatVersion else {
            throw BuildFSError.storeUnusable(
                path: root, reason: "store format \(version), this buildfs reads format \(formatVersion); use a matching buildfs or a new store")
        }
        return true
    }

    func tempPath(_ name: String) -> String { "\(root)/tmp/\(name)" }

    func packPath(_ name: String) -> String { "\(root)/packs/\(name)" }

    /// A name no other writer, in this process or another, will pick.
    static func uniqueName() -> String {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        return String(now, radix: 16) + "-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }

    func moveIntoPlace(_ temp: String, _ path: String) throws {
        guard rename(temp, path) == 0 else {
            let err = errno
            unlink(temp)
            throw SystemCallError("rename", path, code: err)
        }
    }

    // MARK: objects

    public func has(_ id: ObjectID) throws -> Bool { catalog.contains(id) }

    public func writing<R>(_ body: (any ObjectWriter) throws -> R) throws -> R {
        let lock = try StoreLock.shared(root)
        defer { withExtendedLifetime(lock) {} }
        let writer = PackWriter(store: self)
        do {
            return try body(writer)
        } catch {
            writer.abandon()
            throw error
        }
    }

    public func get(_ id: ObjectID, maxLength: Int) throws -> [UInt8] {
        do {
            return try read(id, maxLength: maxLength)
        } catch BuildFSError.missingObject {
            // Another process may have added it, or gc may have moved it.
            try reloadPacks()
            return try read(id, maxLength: maxLength)
        }
    }

    func closePackFiles() { packFiles.withLock { $0.removeAll() } }

    private func read(_ id: ObjectID, maxLength: Int) throws -> [UInt8] {
        guard let location = catalog.lookup(id) else { throw BuildFSError.missingObject(id: id.hex) }
        let slot = location.slot
        guard Int(slot.length) <= maxLength else {
            throw BuildFSError.corruptObject(id: id.hex, reason: "is \(slot.length) bytes, at most \(maxLength) expected")
        }
        return try slot.object(in: try readBlock(location, for: id), id: id)
    }

    struct BlockKey: Hashable, Sendable {
        var pack: String
        var offset: UInt64
    }

    /// A block is decoded by one thread at a time: the kernel sends a
    /// file's next READs while the first is served, and neighbouring chunks
    /// of a file share a block.
    private func readBlock(_ location: PackCatalog.Location, for id: ObjectID) throws -> [UInt8] {
        let key = BlockKey(pack: location.pack, offset: location.slot.blockOffset)
        if let cached = blockCache.get(key) { return cached }
        return try blocksDecoding.run(key) { try decodeBlock(location, key: key, for: id) }
    }

    private func decodeBlock(_ location: PackCatalog.Location, key: BlockKey, for id: ObjectID) throws -> [UInt8] {
        // Again: a flight that ended between readBlock's look and this one
        // cached the block already.
        if let cached = blockCache.get(key) { return cached }
        let file = try packFile(location.pack, for: id)
        var n = 0
        let stored = try [UInt8](unsafeUninitializedCapacity: Int(location.slot.blockLength)) { buffer, count in
            n = try file.readFully(into: UnsafeMutableRawBufferPointer(buffer), at: location.slot.blockOffset)
            count = n
        }
        guard n == Int(location.slot.blockLength) else {
            throw BuildFSError.corruptObject(id: id.hex, reason: "pack \(location.pack) is truncated")
        }
        let block = try decompressors.with { decompressor in
            try stored.withUnsafeBytes { try BlockCodec.decode($0, objectID: id, decompressor: decompressor) }
        }
        // Blocks of one large object are read once per read of it: cache
        // only shared blocks of small objects.
        if Int(location.slot.length) < block.count { blockCache.insert(key, block, cost: block.count) }
        return block
    }

    private func packFile(_ name: String, for id: ObjectID) throws -> FileDescriptor {
        if let open = packFiles.withLock({ $0[name] }) { return open }
        let path = packPath(name + ".pack")
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw BuildFSError.missingObject(id: id.hex) }
            throw SystemCallError("open", path)
        }
        let file = FileDescriptor(raw: fd, path: path)
        return packFiles.withLock { files in
            if let raced = files[name] { return raced }
            files[name] = file
            return file
        }
    }

    /// Puts a pack made elsewhere into the store: `pack` is blocks as
    /// BlockCodec writes them (a remote store's, fetched), `entries` where
    /// each object lies in it. Readers check every object on read as usual.
    public func addPack(_ pack: UnsafeRawBufferPointer, entries: [(ObjectID, PackSlot)]) throws {
        let name = LocalStore.uniqueName()
        try LocalStore.writeFile(tempPath(name + ".pack"), pack, durable: durable, mode: 0o444)
        _ = try installPack(name, entries: entries)
    }

    /// Writes the index of the pack tmp/NAME.pack and moves both into
    /// packs/: the pack first, so an index never names a pack that is not
    /// there. The pack must be durable already if the store is. Returns the
    /// index's size.
    func installPack(_ name: String, entries: [(ObjectID, PackSlot)]) throws -> Int {
        let index = PackIndex.encode(entries)
        let indexTemp = tempPath(name + ".idx")
        do {
            try LocalStore.writeFile(indexTemp, index, durable: durable, mode: 0o444)
            try moveIntoPlace(tempPath(name + ".pack"), packPath(name + ".pack"))
        } catch {
            unlink(tempPath(name + ".pack"))
            unlink(indexTemp)
            throw error
        }
        try moveIntoPlace(indexTemp, packPath(name + ".idx"))
        catalog.add(pack: name, entries: entries)
        return index.count
    }

    // MARK: refs

    func refPath(_ key: String) -> String { "\(root)/refs/\(SnapshotKey.fileName(for: key))" }

    public func writeRef(_ ref: SnapshotRef) throws {
        try SnapshotKey.validate(ref.key)
        let json = try ref.encoded()
        let temp = tempPath(LocalStore.uniqueName() + ".ref")
        try LocalStore.writeFile(temp, json, durable: true)
        try moveIntoPlace(temp, refPath(ref.key))
        let refsDir = try FileDescriptor.open(root + "/refs", O_RDONLY | O_DIRECTORY)
        try refsDir.sync()
    }

    public func readRef(key: String) throws -> SnapshotRef? {
        try SnapshotKey.validate(key)
        let path = refPath(key)
        guard access(path, F_OK) == 0 else { return nil }
        return try decodeRef(path: path, expectedFileName: SnapshotKey.fileName(for: key))
    }

    public func listRefs() throws -> RefListing {
        let dir = try FileDescriptor.open(root + "/refs", O_RDONLY | O_DIRECTORY)
        var listing = RefListing(refs: [], damaged: [])
        for name in try dir.directoryEntries() {
            let fileName = String(decoding: name, as: UTF8.self)
            do {
                listing.refs.append(try decodeRef(path: "\(root)/refs/\(fileName)", expectedFileName: fileName))
            } catch let error as SystemCallError where error.code == ENOENT {
                continue // removed meanwhile
            } catch let error as any ReportableError {
                listing.damaged.append((fileName, error.description))
            }
        }
        return listing
    }

    /// Reads and checks a ref file: valid JSON, a valid key that maps to this
    /// very file name (so a ref cannot pose as another key), a valid root id.
    private func decodeRef(path: String, expectedFileName: String) throws -> SnapshotRef {
        let file = try FileDescriptor.open(path, O_RDONLY)
        let bytes = try file.readAll(limit: 1 << 20)
        func damaged(_ reason: String) -> BuildFSError {
            .storeUnusable(path: path, reason: "damaged ref: \(reason)")
        }
        var ref: SnapshotRef
        do {
            ref = try SnapshotRef.decode(bytes)
        } catch let damage as SnapshotRef.Damage {
            throw damaged(damage.reason)
        }
        guard SnapshotKey.fileName(for: ref.key) == expectedFileName else { throw damaged("key does not match its file name") }
        let st = try file.stat()
        ref.lastUsed = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        return ref
    }

    public func touchRef(key: String) throws {
        try SnapshotKey.validate(key)
        let path = refPath(key)
        guard utimensat(AT_FDCWD, path, nil, 0) == 0 else { throw SystemCallError("touch", path) }
    }

    // MARK: files

    /// Writes a new file whole. On failure the file is removed.
    static func writeFile(_ path: String, _ bytes: [UInt8], durable: Bool, mode: mode_t = 0o644) throws {
        try bytes.withUnsafeBytes { try writeFile(path, $0, durable: durable, mode: mode) }
    }

    static func writeFile(_ path: String, _ bytes: UnsafeRawBufferPointer, durable: Bool, mode: mode_t = 0o644) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemCallError("create", path) }
        let file = FileDescriptor(raw: fd, path: path)
        do {
            try file.writeAll(bytes)
            if durable { try file.sync() }
        } catch {
            unlink(path)
            throw error
        }
    }
}

/// mkdir -p.
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    if mkdir(path, mode) == 0 || errno == EEXIST {
        var st = stat()
        guard stat(path, &st) == 0, st.isDirectory else {
            throw BuildFSError.badTarget(path: path, reason: "exists and is not a directory")
        }
        return
    }
    guard errno == ENOENT else { throw SystemCallError("create directory", path) }
    let parent = (path as NSString).deletingLastPathComponent
    guard !parent.isEmpty, parent != path else { throw SystemCallError("create directory", path) }
    try makeDirectories(parent, mode: mode)
    guard mkdir(path, mode) == 0 || errno == EEXIST else { throw SystemCallError("create directory", path) }
}
