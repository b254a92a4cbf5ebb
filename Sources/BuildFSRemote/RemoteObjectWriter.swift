import BuildFSCore
import Synchronization

/// One import or commit into a remote store. Objects the server is known
/// to hold (RemoteCatalog: the parent snapshot's packs) are skipped; the
/// others are compressed into packs in the cache directory, exactly as a
/// local store writes them, and each pack is sent as one CAS blob as soon
/// as it is finished, while the next one fills. `finish` returns once the
/// last pack is sealed, its uploads still going: the store's writeRef sends
/// the map and index entries beside them and waits for them before the ref
/// (HTTPStore.waitForUploads), the one write that makes a snapshot exist.
final class RemoteObjectWriter: ObjectWriter {
    /// Packs on the wire are smaller than local ones, so that uploads start
    /// early and run side by side.
    static let packSize: UInt64 = 8 << 20

    private let store: HTTPStore
    private let uploads: TransferQueue
    private let packs: PackWriter
    private let bytesSent = SentBytes()

    private final class SentBytes: Sendable {
        let total = Atomic<UInt64>(0)
    }

    init(store: HTTPStore) {
        self.store = store
        let uploads = TransferQueue(threads: store.options.parallelTransfers)
        self.uploads = uploads
        let sent = bytesSent
        packs = PackWriter(store: store.cache.store, compressionLevel: store.options.compressionLevel,
                           packSize: RemoteObjectWriter.packSize) { [store] sealed in
            let (digest, size) = try store.catalogue(sealed)
            sent.total.add(size, ordering: .relaxed)
            try uploads.submit { try store.upload(sealed, as: digest) }
        }
    }

    func put(_ id: ObjectID, content: UnsafeRawBufferPointer) throws {
        if store.catalog.contains(id) { return }
        try packs.putAlways(id, content: content)
    }

    /// Seals the last packs and leaves their uploads to the store (see
    /// above); returns the bytes they send (compressed, as the server
    /// stores them).
    func finish() throws -> UInt64 {
        do {
            _ = try packs.finish()
        } catch {
            uploads.cancel()
            throw error
        }
        store.uploadsPending(uploads)
        return bytesSent.total.load(ordering: .relaxed)
    }

    func abandon() {
        packs.abandon()
        uploads.cancel()
    }
}
