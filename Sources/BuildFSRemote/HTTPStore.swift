import BuildFSCore
import Foundation

/// A store on an HTTP cache server that speaks Bazel's remote-cache
/// protocol (nginx with WebDAV, bazel-remote, ...):
///
///     {base}/cas/{sha256}   an object: its uncompressed bytes, named by
///                           their SHA-256 (servers may verify it)
///     {base}/ac/{sha256}    a ref, or a prefix index entry (PrefixIndex),
///                           named by the hash of "buildfs ref v1\n" + key
///
/// Nothing the server sends is trusted: objects are checked against their
/// id and refs are validated before use. A local store in front of it
/// (ReadThroughCache) keeps what was fetched; KnownObjects remembers what
/// the server has, so that only missing objects are sent.
///
/// There is no gc: evicting is the server's job (docs/remote-store.md).
public final class HTTPStore: Store {
    public let endpoint: RemoteEndpoint
    let options: RemoteOptions
    let transport: HTTPTransport
    let cache: ReadThroughCache
    let known: KnownObjects
    private let fetches = SingleFlight<ObjectID, [UInt8]>()

    public var location: String { endpoint.base }
    /// The local store that caches this remote store.
    public var cacheStore: LocalStore { cache.store }

    public init(url: String, options: RemoteOptions) throws {
        endpoint = try RemoteEndpoint(url)
        self.options = options
        transport = try HTTPTransport(endpoint: endpoint, options: options)
        cache = try ReadThroughCache(directory: options.cacheDirectory)
        known = KnownObjects(path: options.cacheDirectory + "/remote-known")
    }

    // MARK: objects

    public func has(_ id: ObjectID) throws -> Bool {
        if known.contains(id) { return true }
        guard try transport.exists(endpoint.url(.cas, id)) else { return false }
        known.insert(id)
        return true
    }

    public func get(_ id: ObjectID, maxLength: Int) throws -> [UInt8] {
        if let cached = cache.get(id, maxLength: maxLength) { return cached }
        let content = try fetches.run(id) {
            // A racing fetch may have filled the cache meanwhile.
            try cache.get(id, maxLength: maxLength) ?? fetch(id, maxLength: maxLength)
        }
        guard content.count <= maxLength else {
            throw BuildFSError.corruptObject(id: id.hex, reason: "is \(content.count) bytes, at most \(maxLength) expected")
        }
        return content
    }

    /// Gets `id` from the server, checks it, and keeps it in the cache.
    private func fetch(_ id: ObjectID, maxLength: Int) throws -> [UInt8] {
        guard let content = try transport.fetch(endpoint.url(.cas, id), maxLength: maxLength) else {
            throw BuildFSError.remote(
                location: location,
                reason: "object \(id.hex) is missing on the server (evicted?); the snapshot that needs it must be committed again")
        }
        guard ObjectID.hashing(content) == id else {
            throw BuildFSError.remote(
                location: location, reason: "the server sent bytes for object \(id.hex) that do not hash to its id; not used")
        }
        known.insert(id)
        cache.add(id, content)
        return content
    }

    public func prefetch(_ ids: [ObjectID]) throws {
        let queue = TransferQueue(threads: options.parallelTransfers)
        var seen = Set<ObjectID>()
        do {
            for id in ids where seen.insert(id).inserted && !cache.contains(id) {
                try queue.submit { [self] in _ = try get(id, maxLength: BlockCodec.maxContentLength) }
            }
        } catch {
            queue.cancel()
            throw error
        }
        try queue.finish()
    }

    public func writing<R>(_ body: (any ObjectWriter) throws -> R) throws -> R {
        try refuseIfReadOnly()
        let writer = RemoteObjectWriter(store: self)
        // What was uploaded is on the server even when the commit fails.
        defer { known.save() }
        do {
            return try body(writer)
        } catch {
            writer.abandon()
            throw error
        }
    }

    public func close() {
        cache.flush()
        known.save()
    }

    // MARK: refs

    /// The index lines first, the ref last: the ref is what makes a
    /// snapshot exist (lookups only take index lines whose ref exists), so
    /// a failure anywhere before it leaves no snapshot behind.
    public func writeRef(_ ref: SnapshotRef) throws {
        try refuseIfReadOnly()
        try SnapshotKey.validate(ref.key)
        for prefix in PrefixIndex.prefixes(of: ref.key) { try record(ref, under: prefix) }
        try transport.store(endpoint.url(.ac, PrefixIndex.refID(for: ref.key)), try ref.encoded())
    }

    /// Adds `ref` to the index entry of `prefix`; reads the entry back and
    /// merges again when another runner's write replaced ours meanwhile.
    private func record(_ ref: SnapshotRef, under prefix: String) throws {
        let url = endpoint.url(.ac, PrefixIndex.entryID(for: prefix))
        for _ in 0..<3 {
            let current = try indexEntry(url, prefix: prefix)
            if current.contains(where: { $0.key == ref.key && $0.created >= ref.created }) { return }
            try transport.store(url, try PrefixIndex.encode(PrefixIndex.merging(ref, into: current), prefix: prefix))
            // Give a racing writer's PUT time to land before checking.
            Thread.sleep(forTimeInterval: Double.random(in: 0.02...0.1))
        }
    }

    private func indexEntry(_ url: String, prefix: String) throws -> [SnapshotRef] {
        guard let bytes = try transport.fetch(url, maxLength: 16 << 20) else { return [] }
        // A damaged entry is rebuilt from scratch rather than failing commits.
        return PrefixIndex.decode(bytes, prefix: prefix) ?? []
    }

    public func readRef(key: String) throws -> SnapshotRef? {
        try SnapshotKey.validate(key)
        guard let bytes = try transport.fetch(endpoint.url(.ac, PrefixIndex.refID(for: key)), maxLength: 1 << 20) else {
            return nil
        }
        do {
            var ref = try SnapshotRef.decode(bytes)
            guard ref.key == key else { throw SnapshotRef.Damage(reason: "names another key") }
            // The server keeps no use times of its own that we can read.
            ref.lastUsed = ref.created
            return ref
        } catch let damage as SnapshotRef.Damage {
            throw BuildFSError.remote(location: location, reason: "damaged ref for '\(key)': \(damage.reason)")
        }
    }

    /// The newest snapshot under `prefix`: the newest index line whose ref
    /// exists (a line without its ref is a commit that did not finish).
    public func refs(withPrefix prefix: String) throws -> [SnapshotRef] {
        for line in try indexed(prefix) {
            if let ref = try readRef(key: line.key) { return [ref] }
        }
        return []
    }

    /// The newest refs the server's index holds (up to PrefixIndex.capacity).
    public func listRefs() throws -> RefListing {
        RefListing(refs: try indexed("").compactMap { try readRef(key: $0.key) }, damaged: [])
    }

    /// Index lines of keys starting with `prefix`, newest first.
    private func indexed(_ prefix: String) throws -> [SnapshotRef] {
        let entryPrefix = PrefixIndex.entryPrefix(for: prefix)
        return try indexEntry(endpoint.url(.ac, PrefixIndex.entryID(for: entryPrefix)), prefix: entryPrefix)
            .filter { $0.key.utf8.starts(with: prefix.utf8) }
    }

    /// Use is tracked by the server's own eviction (access times), not here.
    public func touchRef(key: String) throws {}

    private func refuseIfReadOnly() throws {
        if options.readOnly {
            throw BuildFSError.usage("the store \(location) was opened with --read-only; nothing is written")
        }
    }

    /// What this process sent and fetched, for summaries.
    public var transferSummary: String {
        let c = transport.counters
        return "\(c.puts.load(ordering: .relaxed)) uploads (\(ByteCount.human(UInt64(c.bytesSent.load(ordering: .relaxed))))), "
            + "\(c.gets.load(ordering: .relaxed)) downloads (\(ByteCount.human(UInt64(c.bytesReceived.load(ordering: .relaxed))))), "
            + "\(c.heads.load(ordering: .relaxed)) existence checks"
            + (c.retries.load(ordering: .relaxed) > 0 ? ", \(c.retries.load(ordering: .relaxed)) retried requests" : "")
    }
}
