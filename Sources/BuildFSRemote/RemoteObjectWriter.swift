import BuildFSCore
import Synchronization

/// One import or commit into a remote store: each object the server is not
/// known to have is checked with HEAD and sent with PUT only when missing,
/// on the store's transfer threads. Durable once `finish` returns (the
/// server answered every PUT), so the ref can follow.
final class RemoteObjectWriter: ObjectWriter {
    private let store: HTTPStore
    private let queue: TransferQueue
    /// Ids this writer already took, so no object is sent twice.
    private let claimed = Mutex<Set<ObjectID>>([])
    private let bytesSent = Atomic<UInt64>(0)

    init(store: HTTPStore) {
        self.store = store
        queue = TransferQueue(threads: store.options.parallelTransfers)
    }

    func put(_ id: ObjectID, content: UnsafeRawBufferPointer) throws {
        if store.known.contains(id) { return }
        guard claimed.withLock({ $0.insert(id).inserted }) else { return }
        let bytes = Array(content)
        try queue.submit { [self] in
            let url = store.endpoint.url(.cas, id)
            if try !store.transport.exists(url) {
                try store.transport.store(url, bytes)
                bytesSent.add(UInt64(bytes.count), ordering: .relaxed)
            }
            store.known.insert(id)
        }
    }

    /// Waits for every upload; returns the bytes sent (uncompressed: the
    /// server stores what it receives).
    func finish() throws -> UInt64 {
        try queue.finish()
        return bytesSent.load(ordering: .relaxed)
    }

    func abandon() {
        queue.cancel()
    }
}
