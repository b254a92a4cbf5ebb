/// Where snapshots live: content-addressed objects and named refs. A local
/// directory implements it, and so does an HTTP cache (BuildFSRemote). Objects are handed over
/// as their uncompressed content; how they are stored is the store's business.
public protocol Store: Sendable {
    /// Where the store is, for messages.
    var location: String { get }

    func has(_ id: ObjectID) throws -> Bool
    /// The verified content of `id`; throws `.missingObject` or
    /// `.corruptObject`, never returns other bytes. Content longer than
    /// `maxLength` is refused as corrupt.
    func get(_ id: ObjectID, maxLength: Int) throws -> [UInt8]
    /// Runs one import or commit: `body` puts objects through the writer,
    /// finishes it, and writes its ref. Objects the store reports as present
    /// stay present until `body` returns (gc waits), and a failed `body`
    /// leaves nothing half-written behind.
    func writing<R>(_ body: (any ObjectWriter) throws -> R) throws -> R

    /// Publishes a ref. Only after the writer that stored its objects has
    /// finished: a ref must never name an object that a crash could lose.
    func writeRef(_ ref: SnapshotRef) throws
    func readRef(key: String) throws -> SnapshotRef?
    func listRefs() throws -> RefListing
    /// Marks the ref as used now (for least-recently-used eviction).
    func touchRef(key: String) throws
    /// Refs whose key starts with `prefix` (byte-wise); at least the newest
    /// of them, which is what a `--from PREFIX` lookup takes.
    func refs(withPrefix prefix: String) throws -> [SnapshotRef]
    /// The newest snapshot imported from `source`: an import's parent when
    /// none is named.
    func newestRef(from source: SourceDirectory) throws -> SnapshotRef?

    /// Prepares to read the objects of `ref`'s snapshot. A remote store
    /// loads where they lie on the server (the snapshot's pack map) and then
    /// fetches per `fetch`. Call before reading a snapshot's objects.
    func openSnapshot(_ ref: SnapshotRef, fetch: SnapshotFetch) throws
    /// Hint that `ids` will be read soon, in this order (a file's chunks):
    /// a remote store starts fetching them ahead of everything else it is
    /// fetching. Returns at once. No-op for a local store.
    func prefetch(_ ids: [ObjectID])
    /// Whether reading `id` needs no network (always, for a local store).
    func isLocal(_ id: ObjectID) -> Bool
    /// Writes out what the store holds back (a remote store's cache). Call
    /// once done with the store.
    func close()
}

/// A batch of object writes. `put` may be called from many threads; objects
/// are durable once `finish` returns, and only then may a ref name them.
/// Writes are idempotent: objects the store has are skipped.
public protocol ObjectWriter: Sendable {
    func put(_ id: ObjectID, content: UnsafeRawBufferPointer) throws
    /// Writes out what is buffered and makes every object durable; returns
    /// the bytes the store grew by.
    func finish() throws -> UInt64
    /// Drops what is not finished (after an error).
    func abandon()
}

extension ObjectWriter {
    /// Stores `content` under its own hash and returns that id.
    @discardableResult
    public func put(_ content: [UInt8]) throws -> ObjectID {
        let id = ObjectID.hashing(content)
        try content.withUnsafeBytes { try put(id, content: $0) }
        return id
    }
}

/// How much of a snapshot a remote store fetches when it is opened.
public enum SnapshotFetch: Sendable {
    /// Nothing ahead: objects come as they are read (an import's parent).
    case onDemand
    /// The trees before `openSnapshot` returns, then everything else in
    /// the order it was written, reads waiting for what they need (export).
    case everything
    /// The trees before `openSnapshot` returns, then everything else in
    /// the background, in the order the job that committed the snapshot
    /// read it (its read trace), then the rest (a mount).
    case inBackground
}

/// What `listRefs` found: the readable refs, and the ones that are not.
public struct RefListing: Sendable {
    public var refs: [SnapshotRef]
    /// (ref file, reason) for refs that could not be read.
    public var damaged: [(name: String, reason: String)]

    public init(refs: [SnapshotRef], damaged: [(name: String, reason: String)]) {
        self.refs = refs
        self.damaged = damaged
    }
}

extension Store {
    public func get(_ id: ObjectID) throws -> [UInt8] {
        try get(id, maxLength: BlockCodec.maxContentLength)
    }

    public func getTree(_ id: ObjectID) throws -> Tree {
        try Tree.decode(try get(id), id: id)
    }

    public func refs(withPrefix prefix: String) throws -> [SnapshotRef] {
        try listRefs().refs.filter { $0.key.utf8.starts(with: prefix.utf8) }
    }

    public func newestRef(from source: SourceDirectory) throws -> SnapshotRef? {
        try listRefs().refs.filter { $0.source == source }.max { $0.created < $1.created }
    }

    public func openSnapshot(_ ref: SnapshotRef, fetch: SnapshotFetch) throws {}

    public func prefetch(_ ids: [ObjectID]) {}

    public func isLocal(_ id: ObjectID) -> Bool { true }

    public func close() {}
}
