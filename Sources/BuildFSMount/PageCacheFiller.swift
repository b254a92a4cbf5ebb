import BuildFSCore
import Foundation

/// Puts small stubs' bytes into the kernel's page cache (FUSE_NOTIFY_STORE),
/// so that reading them costs no READ, and no GETATTR after it (the kernel
/// marks atime stale after every read the daemon serves, and a `stat`
/// then asks again): a stub read whole costs its OPEN alone.
///
/// A stub is filled when it is opened for reading, and, when opens follow
/// the order a directory was listed in (tar, cp -r, grep -r), the next
/// files of that listing are filled ahead, on a thread of their own, while
/// the reader is still busy with the current one. Larger stubs are read
/// through READ, and that thread decodes their next chunks ahead of the
/// reader instead (into the snapshot's chunk cache). And a directory
/// listed for the first time gets its subdirectories' subdirectories
/// expanded on that thread, so that listing a subdirectory, when a walk
/// gets there, finds its expansion one level ahead done (a walk that lists
/// every directory expands them all anyway; `ls` of one directory expands
/// one level more than it needed, off the caller's path).
///
/// Why this never shows stale bytes or deadlocks (docs/snapshot-read-path.md):
///
/// - The kernel overwrites whatever the pages hold. A stub is only written
///   after a copy-up, which happens at the OPEN for writing (or a truncate),
///   before the writer holds any page; copy-up takes the inode's fill lock
///   first, so a fill and a copy-up never overlap, and a fill of a file no
///   longer a stub is skipped. So snapshot mounts serve real OPENs
///   (PassthroughFileSystem.servesFilesWithoutOpens).
/// - A fill waits for any page a READ of the same file holds locked until
///   the daemon answers. Such a READ needs neither the fill lock nor the
///   descriptor gate: the file is a stub whose content its OPEN looked up,
///   and PassthroughFileSystem.serve answers those outside the gate. So no
///   lock a fill holds, and no eviction waiting on the gate, can hold up
///   the READ that the fill waits for.
/// - Pages are a hint: the kernel may drop them any time (memory pressure),
///   and a dropped page is read through READ again.
final class PageCacheFiller: @unchecked Sendable {
    /// Larger stubs are read as the reader asks (their first byte stays
    /// quick from a remote store).
    static let fileLimit: UInt64 = 1 << 20
    /// How many files of a listing are filled ahead of sequential opens.
    static let filesAhead = 32
    /// How far ahead of a READ of a larger stub its chunks are decoded.
    static let bytesDecodedAhead: UInt64 = 4 << 20
    /// Bounds on what is remembered of listings and opens (cleared whole
    /// when reached: it is only a guess at what comes next).
    static let rememberedFiles = 1 << 18

    private let side: SnapshotSide
    private let table: InodeTable
    private let condition = NSCondition()
    // Guarded by `condition`:
    /// Where notifications go: a transport's, taken from the first OPEN.
    private var sink: (any ReplySink)?
    /// The fillable file listed right after / before each (inode numbers).
    private var listedAfter: [UInt64: UInt64] = [:]
    private var listedBefore: [UInt64: UInt64] = [:]
    /// Directories listed, whose subdirectories get expanded ahead.
    private var expandedBelow = Set<UInt64>()
    private var opened = Set<UInt64>()
    private var queue: [Job] = []
    private var queued = Set<UInt64>()

    private enum Job {
        /// Fill the file of this inode number.
        case fill(UInt64)
        /// Decode this stub's chunks from this offset on.
        case decode(StubContent, from: UInt64)
        /// Expand the subdirectories of this directory's subdirectories.
        case expandBelow(UInt64)
    }
    private var threadStarted = false

    init(side: SnapshotSide, table: InodeTable) {
        self.side = side
        self.table = table
    }

    /// A listing (READDIRPLUS) of `directory` handed the kernel these
    /// entries, in this order: the regular files small enough to fill, by
    /// inode number. The first listing of a directory also queues the
    /// expansion below it.
    func listed(_ files: [UInt64], in directory: UInt64) {
        condition.lock()
        if expandedBelow.count >= Self.rememberedFiles { expandedBelow.removeAll(keepingCapacity: true) }
        let firstListing = expandedBelow.insert(directory).inserted
        condition.unlock()
        if firstListing { enqueue([], expandingBelow: directory) }
        guard files.count > 1 else { return }
        condition.lock()
        defer { condition.unlock() }
        if listedAfter.count + files.count > Self.rememberedFiles {
            listedAfter.removeAll(keepingCapacity: true)
            listedBefore.removeAll(keepingCapacity: true)
        }
        for (before, after) in zip(files, files.dropFirst()) {
            listedAfter[before] = after
            listedBefore[after] = before
        }
    }

    /// At an OPEN for reading of the stub `inode` (under the descriptor
    /// gate): fills it now if it is not yet, and the files listed after it
    /// in the background when the file listed before it was opened too.
    func opened(_ inode: Inode, request: Request) {
        let number = table.number(of: inode)
        var ahead: [UInt64] = []
        condition.lock()
        if sink == nil { sink = request.sink }
        if opened.count >= Self.rememberedFiles { opened.removeAll(keepingCapacity: true) }
        opened.insert(number)
        if let before = listedBefore[number], opened.contains(before) {
            // At most filesAhead steps: listings of the same directory in
            // another order can link files in a cycle.
            var next = listedAfter[number]
            for _ in 0..<Self.filesAhead {
                guard let file = next else { break }
                if !queued.contains(file) && !opened.contains(file) { ahead.append(file) }
                next = listedAfter[file]
            }
        }
        condition.unlock()
        if let pieces = bytes(of: inode) { store(pieces, of: inode, number: number, through: request.sink) }
        if !ahead.isEmpty { enqueue(ahead) }
    }

    /// The stub's bytes if it should be filled: a stub, not empty, not
    /// larger than `fileLimit`, not filled yet. Under the gate (the first
    /// look at its layer state reads its xattrs through its descriptor).
    /// A read that fails leaves the file to READ, which reports it.
    private func bytes(of inode: Inode) -> [StubContent.Piece]? {
        guard !inode.withPageCacheFill({ $0 }), let content = try? side.stubContent(inode),
              content.size > 0, content.size <= Self.fileLimit else { return nil }
        return try? content.read(side.layer, size: Int(content.size), offset: 0)
    }

    /// Stores `pieces` as the file's pages, under its fill lock, unless it
    /// was filled or copied up meanwhile. Needs no gate.
    private func store(_ pieces: [StubContent.Piece], of inode: Inode, number: UInt64, through sink: any ReplySink) {
        inode.withPageCacheFill { filled in
            guard !filled, side.knownStubContent(inode) != nil else { return }
            pieces.withBuffers { buffers in filled = sink.storeInPageCache(of: number, pieces: buffers) == 0 }
            if filled { side.layer.counters.filesFilled.add(1, ordering: .relaxed) }
        }
    }

    /// After a READ of a stub too large to fill, up to `end`: its next
    /// chunks are decoded ahead of the reader.
    func readLargeStub(_ stub: StubContent, upTo end: UInt64) {
        guard stub.size > Self.fileLimit, end < stub.size else { return }
        condition.lock()
        defer { condition.unlock() }
        queue.append(.decode(stub, from: end))
        startThreadIfNeeded()
        condition.signal()
    }

    // MARK: the thread that works ahead

    /// Queues fills of `files`, and an expansion below `directory` if
    /// given, before everything queued (a walk lists those subdirectories
    /// before it opens the files in them).
    private func enqueue(_ files: [UInt64], expandingBelow directory: UInt64? = nil) {
        condition.lock()
        defer { condition.unlock() }
        if let directory { queue.insert(.expandBelow(directory), at: 0) }
        for file in files where queued.insert(file).inserted { queue.append(.fill(file)) }
        // A reader that jumped elsewhere leaves files it will not read:
        // the oldest go first.
        if queue.count > 4 * Self.filesAhead {
            let dropped = queue.count - 4 * Self.filesAhead
            for case let .fill(file) in queue.prefix(dropped) { queued.remove(file) }
            queue.removeFirst(dropped)
        }
        startThreadIfNeeded()
        condition.signal()
    }

    /// Caller holds `condition`.
    private func startThreadIfNeeded() {
        guard !threadStarted else { return }
        threadStarted = true
        let thread = Thread { [self] in workAhead() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func workAhead() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let job = queue.removeFirst()
            if case let .fill(number) = job { queued.remove(number) }
            let sink = self.sink
            condition.unlock()
            switch job {
            case let .decode(stub, from):
                stub.decodeAhead(side.layer, from: from, length: Self.bytesDecodedAhead)
            case let .expandBelow(number):
                guard let directory = try? table.inode(number) else { continue }
                table.cache.serving(table) { side.expandSubdirectoriesAhead(of: directory) }
            case let .fill(number):
                // Gone from the kernel meanwhile: nothing to fill.
                guard let sink, let inode = try? table.inode(number) else { continue }
                var pieces: [StubContent.Piece]?
                table.cache.serving(table) { pieces = bytes(of: inode) }
                if let pieces { store(pieces, of: inode, number: number, through: sink) }
            }
        }
    }
}
