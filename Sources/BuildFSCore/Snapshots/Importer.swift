import Foundation
import Glibc
import Synchronization

/// What an import did, for the summary line and for tests.
public struct ImportSummary: Sendable {
    public var ref: SnapshotRef
    /// The snapshot whose unchanged files were reused, if any.
    public var parentKey: String?
    public var filesRead: Int
    public var bytesRead: UInt64
    public var filesReused: Int
    /// Fifos, sockets and device files: not stored.
    public var skipped: [String]
}

/// Snapshots a directory into a store (`buildfs import`): walks it, reads
/// only the files that changed since the parent snapshot, chunks, hashes and
/// compresses them on all cores, writes trees bottom-up, makes the objects
/// durable, and only then publishes the ref.
public final class Importer: Sendable {
    let store: any Store
    let workers: Int

    public init(store: any Store, workers: Int = Parallel.defaultWorkers) {
        self.store = store
        self.workers = workers
    }

    /// `parentCandidates`: keys to take the parent from (restore-key rule);
    /// nil picks the newest snapshot imported from this same directory.
    /// `upperOfMount`: `path` is a mount's upper directory with its snapshot
    /// laid in (a commit; see UpperLayout). The mount writes through, so the
    /// upper directory is exactly what its readers see; it is read directly,
    /// never through the mount (which would expand what it walks).
    public func importDirectory(_ path: String, key: String, parentCandidates: [String]? = nil,
                                upperOfMount: Bool = false,
                                progress: Bool = ProgressLine.stderrIsTerminal) throws -> ImportSummary {
        try SnapshotKey.validate(key)
        let rootDir: FileDescriptor
        do {
            rootDir = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        } catch let error as SystemCallError where error.code == ENOTDIR || error.code == ENOENT {
            throw BuildFSError.badTarget(path: path, reason: error.code == ENOENT ? "no such directory" : "not a directory")
        }
        let rootStat = try rootDir.stat()
        let source = SourceDirectory(path: realPath(path), device: UInt64(rootStat.st_dev), inode: UInt64(rootStat.st_ino))

        // Under the store's writer lock from the first "has it?" (reusing the
        // parent's chunks) to the ref: gc cannot sweep what we rely on.
        return try store.writing { writer in
            let parent = try findParent(candidates: parentCandidates, source: source)
            if upperOfMount { try openMountedSnapshot(rootDir) }
            var scan = DirectoryScan(store: store, rootDir: rootDir)
            scan.readsUpperLayout = upperOfMount
            if let parent {
                scan.parentIndex = (try? parent.statIndexID.map { try StatIndex.decode(try store.get($0), id: $0) }) ?? nil
            }
            let parentRoot = parent.flatMap { $0.rootID.flatMap { try? store.getTree($0) } }
            try scan.walk(rootDir, relativePath: [], parentTree: parentRoot)

            let counters = IngestCounters()
            let line = ProgressLine(enabled: progress) { [jobs = scan.jobs.count] in
                "importing: \(counters.files.load(ordering: .relaxed))/\(jobs) files read, "
                    + ByteCount.human(counters.bytes.load(ordering: .relaxed))
            }
            line.start()
            defer { line.stop() }
            let chunkLists = try ingest(scan.jobs, rootDir: rootDir, writer: writer, counters: counters)
            let rootID = try writeTrees(scan, chunkLists: chunkLists, writer: writer)
            let indexID = try writer.put(scan.statIndex.encode())
            let trace = upperOfMount ? ReadTrace.recorded(inUpper: path) : []
            let traceID = trace.isEmpty ? nil : try writer.put(ReadTrace.encode(Array(trace.prefix(ReadTrace.maxIDs))))
            let added = try writer.finish()

            var ref = SnapshotRef(
                key: key, root: rootID, created: Date().timeIntervalSince1970,
                logicalBytes: scan.logicalBytes, addedBytes: added,
                files: scan.fileCount, directories: scan.nodes.count - 1 + scan.pendingDirectories, symlinks: scan.symlinkCount,
                statIndex: indexID, source: source, parent: parent?.key)
            ref.readTrace = traceID?.hex
            try store.writeRef(ref)
            return ImportSummary(ref: ref, parentKey: parent?.key,
                                 filesRead: counters.files.load(ordering: .relaxed),
                                 bytesRead: counters.bytes.load(ordering: .relaxed),
                                 filesReused: scan.reusedCount, skipped: scan.skipped)
        }
    }

    /// The snapshot whose unchanged files this import reuses, opened so
    /// that the store knows where its objects are. A snapshot the store can
    /// no longer read (an older remote format) is no parent: the import
    /// then stores everything, which also replaces it.
    private func findParent(candidates: [String]?, source: SourceDirectory) throws -> SnapshotRef? {
        let parent: SnapshotRef?
        if let candidates {
            parent = try SnapshotLookup.find(candidates, in: store)
        } else {
            parent = try store.newestRef(from: source)
        }
        guard let parent else { return nil }
        do {
            try store.openSnapshot(parent, fetch: .onDemand)
        } catch BuildFSError.outdatedSnapshot {
            return nil
        }
        return parent
    }

    /// A commit reuses the stubs and pending directories of the snapshot
    /// under the mount without reading them: the store must know where
    /// that snapshot's objects are, whether or not it is the parent.
    private func openMountedSnapshot(_ rootDir: FileDescriptor) throws {
        guard let key = UpperLayout.snapshot(at: .entry(of: rootDir, name: [0x2E]))?.key,
              let mounted = try? store.readRef(key: key) else { return }
        do {
            try store.openSnapshot(mounted, fetch: .onDemand)
        } catch BuildFSError.outdatedSnapshot {
            return
        }
    }

    // MARK: reading files

    /// Reads, chunks, hashes and stores every job's file. Big files go first
    /// so that the workers finish together; small ones follow in walk order,
    /// so that neighbours share compressed blocks.
    private func ingest(_ jobs: [FileJob], rootDir: FileDescriptor, writer: any ObjectWriter,
                        counters: IngestCounters) throws -> [[ChunkRef]] {
        let results = Mutex<[[ChunkRef]]>(jobs.map { $0.reused ?? [] })
        let toRead = jobs.indices.filter { jobs[$0].reused == nil }
        let big = toRead.filter { jobs[$0].size >= 1 << 20 }.sorted { jobs[$0].size > jobs[$1].size }
        let order = big + toRead.filter { jobs[$0].size < 1 << 20 }
        let buffers = ContextPool { ReadBuffer() }
        try Parallel.forEach(order.count, workers: workers) { n in
            let job = jobs[order[n]]
            let chunks = try buffers.with { buffer in
                try chunkFile(job, rootDir: rootDir, buffer: buffer, writer: writer, counters: counters)
            }
            results.withLock { $0[order[n]] = chunks }
            counters.files.add(1, ordering: .relaxed)
        }
        return results.withLock { $0 }
    }

    /// Streams one file through the chunker. Files big enough to hold many
    /// chunks hash and compress the chunks of each buffer in parallel.
    private func chunkFile(_ job: FileJob, rootDir: FileDescriptor, buffer: ReadBuffer,
                           writer: any ObjectWriter, counters: IngestCounters) throws -> [ChunkRef] {
        let file = try rootDir.openAt(job.relativePath, O_RDONLY | O_NOFOLLOW)
        var chunks: [ChunkRef] = []
        var start = 0, filled = 0, atEnd = false
        let memory = buffer.memory
        while true {
            if !atEnd && filled - start < FastCDC.maxSize {
                // Keep at least maxSize bytes ahead of the cursor, or the end.
                let pending = filled - start
                if start > 0 { memory.baseAddress!.copyMemory(from: memory.baseAddress! + start, byteCount: pending) }
                start = 0
                filled = pending
                let room = UnsafeMutableRawBufferPointer(rebasing: memory[filled...])
                let n = try file.readFully(into: room)
                filled += n
                atEnd = n < room.count
                counters.bytes.add(UInt64(n), ordering: .relaxed)
            }
            if start == filled && atEnd { break }
            var ranges: [Range<Int>] = []
            while start < filled && (atEnd || filled - start >= FastCDC.maxSize) {
                let length = FastCDC.cutPoint(UnsafeRawBufferPointer(rebasing: memory[start..<filled]))
                ranges.append(start..<start + length)
                start += length
            }
            let batch = try storeChunks(ranges, in: UnsafeRawBufferPointer(memory), writer: writer)
            chunks.append(contentsOf: batch)
        }
        return chunks
    }

    private func storeChunks(_ ranges: [Range<Int>], in buffer: UnsafeRawBufferPointer,
                             writer: any ObjectWriter) throws -> [ChunkRef] {
        // Workers only read the buffer, and all are done before it is reused.
        nonisolated(unsafe) let memory = buffer
        let refs = Mutex<[ChunkRef?]>(Array(repeating: nil, count: ranges.count))
        try Parallel.forEach(ranges.count, workers: ranges.count >= 8 ? workers : 1) { i in
            let chunk = UnsafeRawBufferPointer(rebasing: memory[ranges[i]])
            let id = ObjectID.hashing(chunk)
            try writer.put(id, content: chunk)
            refs.withLock { $0[i] = ChunkRef(id: id, length: UInt32(chunk.count)) }
        }
        return refs.withLock { $0.map { $0! } }
    }

    // MARK: trees

    /// Encodes and stores the directories deepest first; returns the root id.
    private func writeTrees(_ scan: DirectoryScan, chunkLists: [[ChunkRef]],
                            writer: any ObjectWriter) throws -> ObjectID {
        var treeIDs = [ObjectID?](repeating: nil, count: scan.nodes.count)
        for nodeIndex in scan.nodes.indices.reversed() {
            let entries = scan.nodes[nodeIndex].map { scanned -> TreeEntry in
                let content: EntryContent
                switch scanned.kind {
                case let .file(job):
                    let group = scan.linkCounts[job, default: 1] > 1 ? DirectoryScan.linkGroup(firstPath: scan.jobs[job].firstPath) : 0
                    let chunks = chunkLists[job]
                    let size = chunks.reduce(UInt64(0)) { $0 + UInt64($1.length) }
                    content = .file(size: size, chunks: chunks, linkGroup: group)
                case let .directory(child):
                    content = .directory(treeIDs[child]!)
                case let .pendingDirectory(id):
                    content = .directory(id)
                case let .symlink(target):
                    content = .symlink(target: target)
                }
                return TreeEntry(name: scanned.name, mode: scanned.mode, uid: scanned.uid, gid: scanned.gid,
                                 mtime: scanned.mtime, content: content)
            }
            treeIDs[nodeIndex] = try writer.put(Tree(entries: entries).encode())
        }
        return treeIDs[0]!
    }
}

/// Counters the workers bump, read by the progress line.
final class IngestCounters: Sendable {
    let files = Atomic<Int>(0)
    let bytes = Atomic<UInt64>(0)
}

/// A worker's read buffer: room for several maximum-size chunks.
final class ReadBuffer: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer

    init() {
        memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * FastCDC.maxSize, alignment: 64)
    }

    deinit { memory.deallocate() }
}

func realPath(_ path: String) -> String {
    guard let resolved = Glibc.realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}
