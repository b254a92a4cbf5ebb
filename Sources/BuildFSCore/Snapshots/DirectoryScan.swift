import Glibc

/// A regular file found by the walk: read it, or reuse the parent's chunks.
struct FileJob {
    var relativePath: [UInt8]
    var size: UInt64
    /// The smallest of the job's paths: names of one inode share a link
    /// group derived from it (see `linkGroup`).
    var firstPath: [UInt8]
    /// The parent snapshot's chunk list, when the file is unchanged.
    var reused: [ChunkRef]?
}

struct ScannedEntry {
    enum Kind {
        case file(job: Int)
        case directory(node: Int)
        /// A directory of the mount's snapshot never expanded: its tree as is.
        case pendingDirectory(ObjectID)
        case symlink(target: [UInt8])
    }

    var name: [UInt8]
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var mtime: Timestamp
    var kind: Kind
}

/// The first pass of an import: one walk of the directory with lstat, which
/// decides per file whether it must be read, and records the tree's shape.
/// Directories are numbered in pre-order (0 is the root), so walking the
/// numbers backwards meets every child before its parent.
struct DirectoryScan {
    let store: any Store
    let rootDir: FileDescriptor
    var parentIndex: StatIndex?
    /// Set when committing a mount's upper directory: stubs and pending
    /// directories stand for the snapshot under the mount (UpperLayout),
    /// and are reused without being read.
    var readsUpperLayout = false
    /// Trees of the mount's snapshot that stubs and pending directories
    /// name: many stubs share one directory's tree.
    private let trees = ByteBudgetCache<ObjectID, Tree>(budget: 32 << 20)

    private(set) var nodes: [[ScannedEntry]] = []
    private(set) var jobs: [FileJob] = []
    private(set) var statIndex = StatIndex()
    /// Names per job, for hard links.
    private(set) var linkCounts: [Int: Int] = [:]
    private var jobByInode: [StatIndex.Record: Int] = [:]
    private(set) var fileCount = 0
    private(set) var symlinkCount = 0
    private(set) var reusedCount = 0
    private(set) var logicalBytes: UInt64 = 0
    /// Directories inside (and including) pending ones: not scanned nodes.
    private(set) var pendingDirectories = 0
    private(set) var skipped: [String] = []

    init(store: any Store, rootDir: FileDescriptor) {
        self.store = store
        self.rootDir = rootDir
    }

    /// Scans `dir` (at `relativePath` from the root, "" for the root itself)
    /// and returns its node number.
    @discardableResult
    mutating func walk(_ dir: FileDescriptor, relativePath: [UInt8], parentTree: Tree?) throws -> Int {
        let node = nodes.count
        nodes.append([])
        var entries: [ScannedEntry] = []
        for name in try dir.directoryEntries() {
            if readsUpperLayout && relativePath.isEmpty && name == Array(UpperLayout.internalDirectory.utf8) { continue }
            let path = relativePath.isEmpty ? name : relativePath + [0x2F] + name
            let st = try dir.statAt(name)
            let mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: UInt32(st.st_mtim.tv_nsec))
            let mode = UInt32(st.st_mode) & 0o7777
            let kind: ScannedEntry.Kind
            if st.isRegularFile {
                let stub = readsUpperLayout ? try stubChunks(dir, name, size: UInt64(st.st_size)) : nil
                kind = .file(job: fileJob(path: path, name: name, stat: st, mtime: mtime, mode: mode,
                                          parentTree: parentTree, stubChunks: stub))
                fileCount += 1
            } else if st.isDirectory, readsUpperLayout,
                      let pending = UpperLayout.pendingTree(at: .entry(of: dir, name: name)) {
                kind = .pendingDirectory(pending)
                try countPending(pending)
            } else if st.isDirectory {
                let child = try dir.openAt(name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
                var childParent: Tree?
                if case let .directory(id)? = parentTree?.entry(named: name)?.content {
                    childParent = try? store.getTree(id) // a damaged parent only costs re-reading
                }
                kind = .directory(node: try walk(child, relativePath: path, parentTree: childParent))
            } else if st.isSymlink {
                kind = .symlink(target: try readLink(dir, name))
                symlinkCount += 1
            } else {
                skipped.append(dir.childPath(name))
                continue
            }
            entries.append(ScannedEntry(name: name, mode: mode, uid: st.st_uid, gid: st.st_gid, mtime: mtime, kind: kind))
        }
        nodes[node] = entries
        return node
    }

    private mutating func fileJob(path: [UInt8], name: [UInt8], stat st: stat, mtime: Timestamp, mode: UInt32,
                                  parentTree: Tree?, stubChunks: [ChunkRef]?) -> Int {
        let record = StatIndex.Record(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
            ctime: Timestamp(seconds: Int64(st.st_ctim.tv_sec), nanoseconds: UInt32(st.st_ctim.tv_nsec)))
        statIndex.records[path] = record
        if st.st_nlink > 1, let existing = jobByInode[record] {
            linkCounts[existing, default: 1] += 1
            if path.lexicographicallyPrecedes(jobs[existing].firstPath) { jobs[existing].firstPath = path }
            return existing
        }
        let size = UInt64(st.st_size)
        logicalBytes += size
        var job = FileJob(relativePath: path, size: size, firstPath: path, reused: stubChunks)
        if stubChunks != nil {
            reusedCount += 1
        } else if parentIndex?.records[path] == record,
           let previous = parentTree?.entry(named: name),
           case let .file(previousSize, chunks, _) = previous.content,
           previousSize == size, previous.mtime == mtime, previous.mode == mode,
           chunks.allSatisfy({ (try? store.has($0.id)) == true }) {
            job.reused = chunks
            reusedCount += 1
        }
        jobs.append(job)
        if st.st_nlink > 1 { jobByInode[record] = jobs.count - 1 }
        return jobs.count - 1
    }

    private func tree(_ id: ObjectID) throws -> Tree {
        if let known = trees.get(id) { return known }
        let tree = try store.getTree(id)
        trees.insert(id, tree, cost: tree.approximateBytes)
        return tree
    }

    /// The chunks of a stub (a file of the mount's snapshot never written),
    /// or nil for a plain file.
    private func stubChunks(_ dir: FileDescriptor, _ name: [UInt8], size: UInt64) throws -> [ChunkRef]? {
        guard let stub = UpperLayout.stub(at: .entry(of: dir, name: name)) else {
            return nil
        }
        guard case let .file(stubSize, chunks, _)? = try tree(stub.tree).entry(named: stub.name)?.content, stubSize == size else {
            throw BuildFSError.corruptObject(id: stub.tree.hex, reason: "does not hold the file stub \(dir.childPath(name)) stands for")
        }
        return chunks
    }

    /// Adds a pending directory's contents to the snapshot's counts: every
    /// copy of a shared subtree counts.
    private mutating func countPending(_ id: ObjectID) throws {
        var walk = TreeWalk(skippingWalkedTrees: false)
        try walk.walk(id, read: { id in
            pendingDirectories += 1
            return try tree(id)
        }, visit: { entry in
            switch entry.content {
            case let .file(size, _, _):
                fileCount += 1
                logicalBytes += size
            case .directory:
                break
            case .symlink:
                symlinkCount += 1
            }
        })
    }

    /// The link group of hard links whose smallest path is `firstPath`:
    /// the same tree gets the same groups (so the same tree ids) whichever
    /// machine, directory or mount it is read from.
    static func linkGroup(firstPath: [UInt8]) -> UInt64 {
        let id = ObjectID.hashing(firstPath)
        return id.w0 == 0 ? 1 : id.w0
    }

    private func readLink(_ dir: FileDescriptor, _ name: [UInt8]) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Tree.maxSymlinkTarget + 1)
        let n = withCString(name) { cName in
            buffer.withUnsafeMutableBytes { readlinkat(dir.raw, cName, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        guard n >= 0 else { throw SystemCallError("readlink", dir.childPath(name)) }
        guard n <= Tree.maxSymlinkTarget else {
            throw BuildFSError.badTarget(path: dir.childPath(name), reason: "symlink target longer than \(Tree.maxSymlinkTarget) bytes")
        }
        return Array(buffer[0..<n])
    }
}
