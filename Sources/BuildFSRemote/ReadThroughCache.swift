import BuildFSCore
import Foundation
import Synchronization

/// A local store in front of a remote one: objects fetched from the server
/// are kept here, so each is fetched at most once per machine.
///
/// Fetched objects are held in memory and written to the local store in
/// batches (a pack per object would make thousands of tiny files), when the
/// batch reaches `batchBytes` and on `flush`. The cache is best effort: a
/// damaged or unwritable cache costs fetches, never a failure or wrong bytes
/// (the local store verifies every object it returns).
final class ReadThroughCache: Sendable {
    static let batchBytes = 16 << 20

    let store: LocalStore
    private let pending = Mutex<(objects: [ObjectID: [UInt8]], bytes: Int)>(([:], 0))
    /// Serialises flushes so that batches go out whole, one at a time.
    private let flushing = Mutex<Void>(())
    private let warned = Atomic<Bool>(false)

    init(directory: String) throws {
        do {
            try makeDirectories(directory)
            // Fast and not fsync'd: the cache is written on the read path,
            // and a torn pack only costs fetching its objects again.
            store = try LocalStore(path: directory, compressionLevel: 1, durable: false)
        } catch let error as BuildFSError {
            throw BuildFSError.usage("cache directory: \(error.description) (choose another with --cache-dir)")
        }
    }

    func get(_ id: ObjectID, maxLength: Int) -> [UInt8]? {
        if let held = pending.withLock({ $0.objects[id] }) {
            return held.count <= maxLength ? held : nil
        }
        guard (try? store.has(id)) == true else { return nil }
        return try? store.get(id, maxLength: maxLength)
    }

    func contains(_ id: ObjectID) -> Bool {
        pending.withLock { $0.objects[id] != nil } || (try? store.has(id)) == true
    }

    func add(_ id: ObjectID, _ content: [UInt8]) {
        let full = pending.withLock { batch -> Bool in
            if batch.objects.updateValue(content, forKey: id) == nil { batch.bytes += content.count }
            return batch.bytes >= ReadThroughCache.batchBytes
        }
        if full { flush() }
    }

    /// Writes the held objects to the local store.
    func flush() {
        flushing.withLock { _ in
            let batch = pending.withLock { $0.objects }
            guard !batch.isEmpty else { return }
            do {
                _ = try store.writing { writer in
                    for (id, content) in batch {
                        try content.withUnsafeBytes { try writer.put(id, content: $0) }
                    }
                    return try writer.finish()
                }
            } catch {
                if !warned.exchange(true, ordering: .relaxed) {
                    FileHandle.standardError.write(Data(
                        "buildfs: warning: cannot write the cache at \(store.root): \(error); going on without it\n".utf8))
                }
            }
            // Dropped even when the write failed: memory stays bounded.
            pending.withLock { held in
                for id in batch.keys {
                    if let content = held.objects.removeValue(forKey: id) { held.bytes -= content.count }
                }
            }
        }
    }
}
