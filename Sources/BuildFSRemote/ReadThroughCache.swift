import BuildFSCore
import Foundation
import Synchronization

/// A local store in front of a remote one: blocks fetched from the server's
/// packs are kept here as they came (compressed), so each is fetched at
/// most once per machine and nothing is compressed again. Their objects are
/// checked on every read, as a local store does (see `get`).
///
/// Fetched ranges are held in memory and written to the local store as one
/// pack when `batchBytes` have gathered and on `flush` (a pack per fetch
/// would make hundreds of small files). The cache is best effort: a damaged
/// or unwritable cache costs fetches, never a failure or wrong bytes (every
/// object read is checked against its id).
final class ReadThroughCache: Sendable {
    static let batchBytes = 16 << 20

    /// Fetched blocks not yet in the local store: a pack in memory.
    private struct Batch {
        var bytes: [UInt8] = []
        var slots: [ObjectID: PackSlot] = [:]
    }

    let store: LocalStore
    /// The open batch is last; earlier ones are being written.
    private let batches = Mutex<[Batch]>([Batch()])
    /// Serialises flushes so that batches go out whole, one at a time.
    private let flushing = Mutex<Void>(())
    private let decompressors = ContextPool { ZstdDecompressor() }
    private let warned = Atomic<Bool>(false)

    init(directory: String) throws {
        do {
            try makeDirectories(directory)
            // Not fsync'd: the cache is written on the read path, and a torn
            // pack only costs fetching its objects again.
            store = try LocalStore(path: directory, compressionLevel: 1, durable: false)
        } catch let error as any ReportableError {
            throw BuildFSError.usage("cache directory: \(error.description) (choose another with --cache-dir)")
        }
    }

    enum Lookup {
        case hit([UInt8])
        case missing
        /// Held, but its bytes do not decode or hash to the id: dropped.
        case damaged
    }

    /// The object's checked bytes. Blocks are kept as fetched and checked
    /// here, on every read, like any local store's: a damaged copy (from
    /// the server, or the disk) is dropped, so that it is fetched again.
    func get(_ id: ObjectID, maxLength: Int) -> Lookup {
        if let held = heldBlock(of: id) {
            guard Int(held.slot.length) <= maxLength else { return .missing }
            do {
                let block = try held.stored.withUnsafeBytes { stored in
                    try decompressors.with { try BlockCodec.decode(stored, objectID: id, decompressor: $0) }
                }
                return .hit(try held.slot.object(in: block, id: id))
            } catch {
                dropHeld(block: held.slot.blockOffset, of: id)
                return .damaged
            }
        }
        guard (try? store.has(id)) == true else { return .missing }
        do {
            return .hit(try store.get(id, maxLength: maxLength))
        } catch BuildFSError.corruptObject {
            if let pack = store.packName(holding: id) {
                try? store.removePack(pack)
                try? store.reloadPacks()
            }
            return .damaged
        } catch {
            return .missing
        }
    }

    private func heldBlock(of id: ObjectID) -> (stored: ArraySlice<UInt8>, slot: PackSlot)? {
        batches.withLock { batches in
            for batch in batches.reversed() {
                if let slot = batch.slots[id] {
                    let start = Int(slot.blockOffset), end = start + Int(slot.blockLength)
                    return (end <= batch.bytes.count ? batch.bytes[start..<end] : [], slot)
                }
            }
            return nil
        }
    }

    /// Forgets the held block at `offset` of the batch holding `id`.
    private func dropHeld(block offset: UInt64, of id: ObjectID) {
        batches.withLock { batches in
            for n in batches.indices where batches[n].slots[id] != nil {
                batches[n].slots = batches[n].slots.filter { $0.value.blockOffset != offset }
            }
        }
    }

    func contains(_ id: ObjectID) -> Bool {
        batches.withLock { $0.contains { $0.slots[id] != nil } } || (try? store.has(id)) == true
    }

    /// Keeps `blocks` (consecutive blocks of a pack), whose objects
    /// lie at `entries` (offsets relative to the start of `blocks`).
    func add(blocks: ArraySlice<UInt8>, entries: [(ObjectID, PackSlot)]) {
        let full = batches.withLock { batches -> Bool in
            let base = UInt64(batches[batches.count - 1].bytes.count)
            batches[batches.count - 1].bytes.append(contentsOf: blocks)
            for (id, slot) in entries {
                var moved = slot
                moved.blockOffset += base
                batches[batches.count - 1].slots[id] = moved
            }
            return batches[batches.count - 1].bytes.count >= ReadThroughCache.batchBytes
        }
        if full { flush() }
    }

    /// Writes the held blocks to the local store as a pack.
    func flush() {
        flushing.withLock { _ in
            let batch = batches.withLock { batches -> Batch in
                let open = batches[batches.count - 1]
                if !open.slots.isEmpty { batches.append(Batch()) }
                return open
            }
            guard !batch.slots.isEmpty else { return }
            do {
                try batch.bytes.withUnsafeBytes { try store.addPack($0, entries: Array(batch.slots.map { ($0.key, $0.value) })) }
            } catch {
                if !warned.exchange(true, ordering: .relaxed) {
                    FileHandle.standardError.write(Data(
                        "buildfs: warning: cannot write the cache at \(store.root): \(error); going on without it\n".utf8))
                }
            }
            // Dropped even when the write failed: memory stays bounded.
            _ = batches.withLock { $0.removeFirst() }
        }
    }
}
