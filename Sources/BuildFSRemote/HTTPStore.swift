import BuildFSCore
import Foundation
import Glibc
import Synchronization

/// A store on an HTTP cache server that speaks Bazel's remote-cache
/// protocol (nginx with WebDAV, bazel-remote, ...):
///
///     {base}/cas/{sha256}   a pack (compressed blocks of objects, the local
///                           store's pack format) or a pack map (PackMap),
///                           named by the SHA-256 of its bytes (servers may
///                           verify it)
///     {base}/ac/{sha256}    a ref, or a prefix index entry (PrefixIndex),
///                           named by the hash of "buildfs ref v1\n" + key
///
/// A ref names its snapshot's pack map, which says where each object of the
/// snapshot lies. A save packs what its parent's packs lack, sends each pack
/// whole, then the map, the index entries and the ref; a restore or a read
/// fetches blocks with Range requests (BlockFetcher).
///
/// Nothing the server sends is trusted: maps and whole packs are checked
/// against their names, every object against its id, refs are validated.
/// A local store in front of it (ReadThroughCache) keeps what was fetched
/// and what was sent.
///
/// There is no gc: evicting is the server's job (docs/remote-store.md).
public final class HTTPStore: Store {
    public let endpoint: RemoteEndpoint
    let options: RemoteOptions
    let transport: HTTPTransport
    let cache: ReadThroughCache
    let catalog = RemoteCatalog()
    private let fetcher: BlockFetcher
    /// Pack maps fetched or written, kept by id (they are checked on load).
    private let mapsDirectory: String
    /// The key of the last save from each source directory, by a hash of
    /// the source: a hint, read beside the index (see newestRef).
    private let lastSavesDirectory: String
    /// Pack uploads going on behind a finished writer.
    private let pendingUploads = Mutex<[TransferQueue]>([])

    public var location: String { endpoint.base }
    /// The local store that caches this remote store.
    public var cacheStore: LocalStore { cache.store }

    public init(url: String, options: RemoteOptions) throws {
        endpoint = try RemoteEndpoint(url)
        self.options = options
        transport = try HTTPTransport(endpoint: endpoint, options: options)
        cache = try ReadThroughCache(directory: options.cacheDirectory)
        mapsDirectory = options.cacheDirectory + "/pack-maps"
        lastSavesDirectory = options.cacheDirectory + "/last-saves"
        fetcher = BlockFetcher(transport: transport, endpoint: endpoint, catalog: catalog, cache: cache,
                               threads: options.parallelTransfers)
    }

    // MARK: objects

    /// Whether an opened snapshot's packs, or this process's uploads, hold
    /// `id`: the server is never asked object by object.
    public func has(_ id: ObjectID) throws -> Bool { catalog.contains(id) }

    public func get(_ id: ObjectID, maxLength: Int) throws -> [UInt8] {
        let cached = cache.get(id, maxLength: maxLength)
        if case let .hit(content) = cached { return content }
        guard let (block, slot) = catalog.location(id) else {
            throw BuildFSError.remote(
                location: location, reason: "object \(id.hex) is in none of the snapshots opened from this server; the snapshot that needs it must be saved again")
        }
        guard Int(slot.length) <= maxLength else {
            throw BuildFSError.corruptObject(id: id.hex, reason: "is \(slot.length) bytes, at most \(maxLength) expected")
        }
        // A copy that went bad since it was fetched is fetched again.
        if case .damaged = cached { fetcher.forget(block) }
        for attempt in 0..<2 {
            try fetcher.fetch([block], urgency: .now, wait: true)
            let fetched = cache.get(id, maxLength: maxLength)
            if case let .hit(content) = fetched { return content }
            fetcher.forget(block)
            guard attempt == 1 else { continue }
            if case .damaged = fetched {
                throw BuildFSError.remote(location: location, reason:
                    "the server sent damaged bytes for pack \(block.pack.hex) (object \(id.hex) does not decode or hash to its id); not used")
            }
            throw BuildFSError.remote(location: location,
                                      reason: "object \(id.hex) was fetched but could not be kept in the cache at \(cache.store.root)")
        }
        throw BuildFSError.missingObject(id: id.hex)
    }

    public func isLocal(_ id: ObjectID) -> Bool { cache.contains(id) }

    public func prefetch(_ ids: [ObjectID]) {
        let blocks = missingBlocks(holding: ids)
        guard !blocks.isEmpty else { return }
        try? fetcher.fetch(blocks, urgency: .soon, wait: false)
    }

    public func openSnapshot(_ ref: SnapshotRef, fetch: SnapshotFetch) throws {
        guard let mapID = ref.packMapID else { throw BuildFSError.outdatedSnapshot(key: ref.key, location: location) }
        let map = try loadMap(mapID, key: ref.key)
        catalog.add(map, id: mapID)
        guard fetch != .onDemand else { return }
        // The metadata first, in one or a few requests: then every lookup
        // and listing is local.
        try fetcher.fetch(missingBlocks(holding: map.entries.filter(\.isTree).map(\.id)), urgency: .now, wait: true)
        // Then the rest in pack order, which is the order an import wrote
        // and an export writes; a read waiting for a block moves it ahead.
        let everything = map.entries.map(\.id)
        switch fetch {
        case .onDemand:
            return
        case .everything:
            try fetcher.fetch(missingBlocks(holding: everything), urgency: .soon, wait: false)
        case .inBackground:
            // The trace is an object too: read off the caller's path. A
            // trace that cannot be read only loses the order.
            let thread = Thread { [self] in
                let trace = ref.readTraceID.flatMap { id in (try? get(id)).flatMap { try? ReadTrace.decode($0, id: id) } } ?? []
                try? fetcher.fetch(missingBlocks(holding: trace + everything), urgency: .background, wait: false)
            }
            thread.start()
        }
    }

    /// The blocks holding `ids` whose objects the cache lacks, each once,
    /// in the order of the first id each holds.
    private func missingBlocks(holding ids: [ObjectID]) -> [RemoteCatalog.Block] {
        var seen = Set<RemoteCatalog.Block>()
        return ids.compactMap { id in
            guard let (block, _) = catalog.location(id), !seen.contains(block), !cache.contains(id) else { return nil }
            seen.insert(block)
            return block
        }
    }

    /// The pack map `id`, from the cache directory or the server.
    private func loadMap(_ id: ObjectID, key: String) throws -> PackMap {
        let path = mapsDirectory + "/" + id.hex
        if let bytes = FileManager.default.contents(atPath: path).map(Array.init), ObjectID.hashing(bytes) == id,
           let map = try? PackMap.decode(bytes, id: id) {
            return map
        }
        guard let bytes = try transport.fetch(endpoint.url(.cas, id), maxLength: 1 << 30) else {
            throw BuildFSError.remote(
                location: location, reason: "the pack map of snapshot '\(key)' is missing on the server (evicted?); save the snapshot again")
        }
        guard ObjectID.hashing(bytes) == id else {
            throw BuildFSError.remote(location: location, reason: "the server sent damaged bytes for the pack map of '\(key)'; not used")
        }
        let map: PackMap
        do {
            map = try PackMap.decode(bytes, id: id)
        } catch let error as BuildFSError {
            throw BuildFSError.remote(location: location, reason: "the pack map of snapshot '\(key)' is unusable (\(error)); save the snapshot again")
        }
        keepMap(id, bytes)
        return map
    }

    /// Best effort: a map not kept is fetched again next time.
    private func keepMap(_ id: ObjectID, _ bytes: [UInt8]) {
        try? makeDirectories(mapsDirectory)
        try? replaceFile(mapsDirectory + "/" + id.hex, with: bytes, durable: false)
    }

    /// A pack a writer sealed, named and entered in the catalog before it
    /// is sent (a map built meanwhile finds its objects); its id and size.
    func catalogue(_ sealed: PackWriter.SealedPack) throws -> (ObjectID, UInt64) {
        let bytes = try FileDescriptor.open(sealed.path, O_RDONLY).readAll(limit: Int(PackMap.maxPackSize))
        let digest = ObjectID.hashing(bytes)
        catalog.add(pack: digest, size: UInt64(bytes.count), entries: sealed.entries)
        return (digest, UInt64(bytes.count))
    }

    /// Sends a catalogued pack as one CAS blob, read again (the page cache
    /// has it, and queued uploads hold no bytes) but not hashed again: an
    /// installed pack is read-only and never rewritten.
    func upload(_ sealed: PackWriter.SealedPack, as digest: ObjectID) throws {
        let bytes = try FileDescriptor.open(sealed.path, O_RDONLY).readAll(limit: Int(PackMap.maxPackSize))
        try transport.store(endpoint.url(.cas, digest), bytes)
    }

    /// Uploads a writer left going (RemoteObjectWriter.finish).
    func uploadsPending(_ uploads: TransferQueue) {
        pendingUploads.withLock { $0.append(uploads) }
    }

    /// Waits for every upload a writer left going; the first failure.
    private func waitForUploads() throws {
        let queues = pendingUploads.withLock { queues in
            defer { queues.removeAll() }
            return queues
        }
        var failure: (any Error)?
        for uploads in queues {
            do { try uploads.finish() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    public func writing<R>(_ body: (any ObjectWriter) throws -> R) throws -> R {
        try refuseIfReadOnly()
        let writer = RemoteObjectWriter(store: self)
        do {
            return try body(writer)
        } catch {
            writer.abandon()
            for uploads in pendingUploads.withLock({ queues in defer { queues.removeAll() }; return queues }) {
                uploads.cancel()
            }
            throw error
        }
    }

    public func close() {
        cache.flush()
    }

    // MARK: refs

    /// The index lines first, the ref last: the ref is what makes a
    /// snapshot exist (lookups only take index lines whose ref exists), so
    /// a failure anywhere before it leaves no snapshot behind. Each step's
    /// requests go side by side, so a save costs three round trips here
    /// whatever the RTT: the map with each index entry read and rewritten
    /// (beside the last packs' uploads, which the ref waits for), then the
    /// ref with each entry read back.
    public func writeRef(_ ref: SnapshotRef) throws {
        try refuseIfReadOnly()
        try SnapshotKey.validate(ref.key)
        var ref = ref
        let (map, mapID) = try packMap(of: ref)
        ref.packMap = mapID.hex
        let prefixes = PrefixIndex.prefixes(of: ref.key)
        let sends = TransferQueue(threads: prefixes.count + 1)
        try sends.submit { [self] in
            try transport.store(endpoint.url(.cas, mapID), map)
            keepMap(mapID, map)
        }
        for prefix in prefixes { try sends.submit { [self, ref] in try record(ref, under: prefix) } }
        let sent = Result { try sends.finish() }
        try waitForUploads()
        try sent.get()
        let last = TransferQueue(threads: prefixes.count + 1)
        try last.submit { [self, ref] in
            try transport.store(endpoint.url(.ac, PrefixIndex.refID(for: ref.key)), try ref.encoded())
        }
        for prefix in prefixes { try last.submit { [self, ref] in try confirm(ref, under: prefix) } }
        try last.finish()
        rememberSave(ref)
    }

    /// The pack map of `ref`'s snapshot, encoded, and its id: every object
    /// reachable from it, found in the packs of the snapshots opened and of
    /// this process's uploads. Objects in neither (a parent that is gone)
    /// are packed from the cache and sent first.
    private func packMap(of ref: SnapshotRef) throws -> (bytes: [UInt8], id: ObjectID) {
        var trees = Set<ObjectID>()
        let reachable = try Reachability.mark([ref], in: self) { trees.insert($0) }.keys
        var (map, unknown) = catalog.map(of: reachable, trees: trees)
        if !unknown.isEmpty {
            try writing { writer in
                for id in unknown {
                    guard case let .hit(content) = cache.get(id, maxLength: BlockCodec.maxContentLength) else {
                        throw BuildFSError.missingObject(id: id.hex)
                    }
                    try content.withUnsafeBytes { try writer.put(id, content: $0) }
                }
                _ = try writer.finish()
            }
            (map, unknown) = catalog.map(of: reachable, trees: trees)
            guard unknown.isEmpty else { throw BuildFSError.missingObject(id: unknown[0].hex) }
        }
        let bytes = map.encode()
        let id = ObjectID.hashing(bytes)
        catalog.add(map, id: id)
        return (bytes, id)
    }

    /// Adds `ref` to the index entry of `prefix` (read, merged, written).
    private func record(_ ref: SnapshotRef, under prefix: String) throws {
        let url = endpoint.url(.ac, PrefixIndex.entryID(for: prefix))
        let current = try indexEntry(url, prefix: prefix)
        if current.contains(where: { $0.key == ref.key && $0.created >= ref.created }) { return }
        try transport.store(url, try PrefixIndex.encode(PrefixIndex.merging(ref, into: current), prefix: prefix))
    }

    /// Reads the entry of `prefix` back, and records `ref` again when
    /// another runner's write replaced ours meanwhile (twice at most).
    private func confirm(_ ref: SnapshotRef, under prefix: String) throws {
        let url = endpoint.url(.ac, PrefixIndex.entryID(for: prefix))
        for _ in 0..<3 {
            // Give a racing writer's PUT time to land before checking.
            Thread.sleep(forTimeInterval: Double.random(in: 0.01...0.04))
            let current = try indexEntry(url, prefix: prefix)
            if current.contains(where: { $0.key == ref.key && $0.created >= ref.created }) { return }
            try transport.store(url, try PrefixIndex.encode(PrefixIndex.merging(ref, into: current), prefix: prefix))
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

    /// The newest index line from `source` whose ref exists: one ref read,
    /// not one per snapshot the server holds. The ref this cache last saved
    /// from `source` is read beside the index entry, as it is usually that
    /// line: a save after a small change then starts one round trip sooner.
    public func newestRef(from source: SourceDirectory) throws -> SnapshotRef? {
        let hint = ProcFile.read(lastSavePath(source), limit: 4096)
        let hinted = Mutex<SnapshotRef?>(nil)
        let reads = TransferQueue(threads: 1)
        if let hint, (try? SnapshotKey.validate(hint)) != nil {
            // A hint that fails costs nothing: its line is read again below.
            try reads.submit { [self] in
                let ref = try? readRef(key: hint)
                hinted.withLock { $0 = ref }
            }
        }
        let lines: [SnapshotRef]
        do {
            lines = try indexed("")
        } catch {
            reads.cancel()
            throw error
        }
        try reads.finish()
        for line in lines where line.source == source {
            let ref = try (line.key == hint ? hinted.withLock { $0 } : nil) ?? readRef(key: line.key)
            if let ref, ref.source == source { return ref }
        }
        return nil
    }

    private func lastSavePath(_ source: SourceDirectory) -> String {
        lastSavesDirectory + "/" + ObjectID.hashing(Array("\(source.path)\n\(source.device)\n\(source.inode)".utf8)).hex
    }

    /// Best effort: without it the next save reads the index first.
    private func rememberSave(_ ref: SnapshotRef) {
        guard let source = ref.source else { return }
        try? makeDirectories(lastSavesDirectory)
        try? replaceFile(lastSavePath(source), with: Array(ref.key.utf8), durable: false)
    }

    /// The newest refs the server's index holds (up to PrefixIndex.capacity),
    /// read side by side.
    public func listRefs() throws -> RefListing {
        let keys = try indexed("").map(\.key)
        let refs = Mutex<[SnapshotRef?]>(Array(repeating: nil, count: keys.count))
        let reads = TransferQueue(threads: options.parallelTransfers)
        for (n, key) in keys.enumerated() {
            try reads.submit { [self] in
                let ref = try readRef(key: key)
                refs.withLock { $0[n] = ref }
            }
        }
        try reads.finish()
        return RefListing(refs: refs.withLock { $0.compactMap { $0 } }, damaged: [])
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
            + "\(c.gets.load(ordering: .relaxed)) downloads (\(ByteCount.human(UInt64(c.bytesReceived.load(ordering: .relaxed)))))"
            + (c.retries.load(ordering: .relaxed) > 0 ? ", \(c.retries.load(ordering: .relaxed)) retried requests" : "")
    }
}

extension HTTPStore {
    /// Closes every remote store's connections; for the end of a command.
    public static func closeConnections() { HTTPTransport.shutDownClients() }
}
