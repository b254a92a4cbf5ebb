import Glibc
import Synchronization

/// Writes objects into new packs for one import or commit. Workers call
/// `put` concurrently; each worker thread gets its own lane (its own pack
/// file and block being filled), so compression runs on every core.
/// Objects become readable when their pack is finished; all are finished and
/// durable when `finish` returns, and only then may a ref name them.
public final class PackWriter: ObjectWriter {
    /// A pack a writer finished: in the store's packs/ and in its catalog.
    public struct SealedPack: Sendable {
        public var path: String
        public var entries: [(ObjectID, PackSlot)]
    }

    /// Objects share blocks of up to this size: large enough for zstd to
    /// find redundancy across small files and neighbouring chunks, small
    /// enough to decode for one read.
    static let blockSize = 1024 * 1024
    /// A pack is finished once it reaches this size.
    public static let packSize: UInt64 = 64 * 1024 * 1024

    private let store: LocalStore
    private let lanes: ContextPool<PackLane>
    /// Ids this writer already took, so two workers never store one twice.
    private let claimed = Mutex<Set<ObjectID>>([])

    /// `compressionLevel` defaults to the store's; `onSealed` is called on
    /// the writing thread with each pack as soon as it is finished.
    public init(store: LocalStore, compressionLevel: Int32? = nil, packSize: UInt64 = PackWriter.packSize,
                onSealed: (@Sendable (SealedPack) throws -> Void)? = nil) {
        self.store = store
        let level = compressionLevel ?? store.compressionLevel
        lanes = ContextPool { PackLane(store: store, level: level, packSize: packSize, onSealed: onSealed) }
    }

    public func put(_ id: ObjectID, content: UnsafeRawBufferPointer) throws {
        if store.catalog.contains(id) { return }
        guard claimed.withLock({ $0.insert(id).inserted }) else { return }
        try lanes.with { try $0.append(id, content) }
    }

    /// Stores `content` even when the catalog already has it: a rewrite
    /// moves objects out of a pack that is about to be removed, and a remote
    /// store's writer packs what the server lacks, whatever its cache holds.
    public func putAlways(_ id: ObjectID, content: UnsafeRawBufferPointer) throws {
        guard claimed.withLock({ $0.insert(id).inserted }) else { return }
        try lanes.with { try $0.append(id, content) }
    }

    /// Seals every lane's pack (each fsync'd with its index) and makes the
    /// renames durable: only what this writer wrote is flushed, not the whole
    /// file system (a syncfs waited for every other job's dirty data too).
    public func finish() throws -> UInt64 {
        var total: UInt64 = 0
        for lane in lanes.all { total += try lane.finishPack() }
        if total > 0 && store.durable { try FileDescriptor.open(store.packPath(""), O_RDONLY | O_DIRECTORY).sync() }
        return total
    }

    public func abandon() {
        for lane in lanes.all { lane.abandon() }
    }
}

/// One pack being written by one thread at a time (ContextPool hands it out).
final class PackLane: @unchecked Sendable {
    private let store: LocalStore
    private let compressor: ZstdCompressor
    private let packSize: UInt64
    private let onSealed: (@Sendable (PackWriter.SealedPack) throws -> Void)?
    private var pack: (name: String, file: FileDescriptor)?
    private var packLength: UInt64 = 0
    private var entries: [(ObjectID, PackSlot)] = []
    private var block: [UInt8] = []
    private var blockObjects: [(ObjectID, offset: Int, length: Int)] = []
    /// Bytes of packs this lane finished.
    private var written: UInt64 = 0

    init(store: LocalStore, level: Int32, packSize: UInt64, onSealed: (@Sendable (PackWriter.SealedPack) throws -> Void)?) {
        self.store = store
        self.packSize = packSize
        self.onSealed = onSealed
        compressor = ZstdCompressor(level: level)
        block.reserveCapacity(PackWriter.blockSize)
    }

    func append(_ id: ObjectID, _ content: UnsafeRawBufferPointer) throws {
        if block.count + content.count > PackWriter.blockSize { try flushBlock() }
        if content.count >= PackWriter.blockSize {
            // Objects as big as a block get one of their own.
            try writeBlock(content, objects: [(id, 0, content.count)])
            return
        }
        blockObjects.append((id, block.count, content.count))
        block.append(contentsOf: content)
    }

    private func flushBlock() throws {
        guard !blockObjects.isEmpty else { return }
        let objects = blockObjects
        try block.withUnsafeBytes { try writeBlock($0, objects: objects) }
        block.removeAll(keepingCapacity: true)
        blockObjects.removeAll(keepingCapacity: true)
    }

    private func writeBlock(_ content: UnsafeRawBufferPointer, objects: [(ObjectID, offset: Int, length: Int)]) throws {
        let encoded = BlockCodec.encode(content, compressor: compressor)
        if pack == nil {
            let name = LocalStore.uniqueName()
            pack = (name, try FileDescriptor.open(store.tempPath(name + ".pack"), O_WRONLY | O_CREAT | O_EXCL, mode: 0o444))
            packLength = 0
        }
        try encoded.withUnsafeBytes { try pack!.file.writeAll($0) }
        for (id, offset, length) in objects {
            entries.append((id, PackSlot(blockOffset: packLength, blockLength: UInt32(encoded.count),
                                         offsetInBlock: UInt32(offset), length: UInt32(length))))
        }
        packLength += UInt64(encoded.count)
        if packLength >= packSize { written += try sealPack() }
    }

    /// Makes pack and index durable and moves them into packs/.
    private func sealPack() throws -> UInt64 {
        guard let (name, file) = pack else { return 0 }
        if store.durable { try file.sync() }
        let indexSize = try store.installPack(name, entries: entries)
        let sealed = PackWriter.SealedPack(path: store.packPath(name + ".pack"), entries: entries)
        let size = packLength + UInt64(indexSize)
        pack = nil
        entries.removeAll()
        try onSealed?(sealed)
        return size
    }

    func finishPack() throws -> UInt64 {
        try flushBlock()
        written += try sealPack()
        return written
    }

    func abandon() {
        if let (name, _) = pack { unlink(store.tempPath(name + ".pack")) }
        pack = nil
    }
}
