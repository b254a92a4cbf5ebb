import Glibc
import Synchronization

public struct ExportSummary: Sendable {
    public var files: Int
    public var bytes: UInt64
}

/// Writes a snapshot out as a plain directory (`buildfs export`): creates
/// the directories and symlinks while walking the trees, writes the files on
/// all cores, then hard links, then directory metadata deepest first (making
/// an entry changes its directory's mtime).
///
/// Never writes outside the target: tree names are validated on decode (no
/// `/`, `.`, `..`, NUL, duplicates), each path is built only from them, and
/// the last component is opened with O_NOFOLLOW | O_EXCL.
public final class Exporter: Sendable {
    let store: any Store
    let workers: Int

    public init(store: any Store, workers: Int = Parallel.defaultWorkers) {
        self.store = store
        self.workers = workers
    }

    private struct FileWrite: Sendable {
        var path: [UInt8]
        var entry: TreeEntry
        var size: UInt64
        var chunks: [ChunkRef]
    }

    private struct Plan {
        var files: [FileWrite] = []
        var links: [(existing: [UInt8], new: [UInt8])] = []
        /// Directories in pre-order, with their metadata ("" is the root).
        var directories: [(path: [UInt8], entry: TreeEntry?)] = []
        var firstNameOfGroup: [UInt64: [UInt8]] = [:]
    }

    public func export(_ ref: SnapshotRef, to target: String,
                       progress: Bool = ProgressLine.stderrIsTerminal) throws -> ExportSummary {
        guard let rootID = ref.rootID else { throw BuildFSError.corruptObject(id: ref.root, reason: "bad root id") }
        let rootDir = try Exporter.prepareTarget(target)
        // A remote store fetches the trees now and everything else while
        // the files are written, in a few large requests, many in flight.
        try store.openSnapshot(ref, fetch: .everything)
        var plan = Plan()
        plan.directories.append(([], nil))
        try expand(rootID, rootDir: rootDir, plan: &plan)

        // Big files first so that the workers finish together; small ones in
        // tree order, which keeps each directory's new inodes together.
        let big = plan.files.indices.filter { plan.files[$0].size >= 1 << 20 }
            .sorted { plan.files[$0].size > plan.files[$1].size }
        let order = big + plan.files.indices.filter { plan.files[$0].size < 1 << 20 }
        let files = plan.files
        let written = Atomic<Int>(0)
        let line = ProgressLine(enabled: progress) { "exporting: \(written.load(ordering: .relaxed))/\(files.count) files" }
        line.start()
        defer { line.stop() }
        try Parallel.forEach(order.count, workers: workers) { n in
            try write(files[order[n]], rootDir: rootDir)
            written.add(1, ordering: .relaxed)
        }
        for link in plan.links {
            let rc = withCString(link.existing) { from in
                withCString(link.new) { to in linkat(rootDir.raw, from, rootDir.raw, to, 0) }
            }
            guard rc == 0 else { throw SystemCallError("link", rootDir.childPath(link.new)) }
        }
        for (path, entry) in plan.directories.reversed() {
            guard let entry else { continue }
            try applyMetadata(entry, at: path, rootDir: rootDir, followLinks: true)
        }
        try? store.touchRef(key: ref.key)
        return ExportSummary(files: files.count + plan.links.count,
                             bytes: files.reduce(0) { $0 + $1.size })
    }

    /// The target must be an empty directory or not exist yet.
    static func prepareTarget(_ target: String) throws -> FileDescriptor {
        var st = stat()
        if lstat(target, &st) == 0 {
            guard st.isDirectory else { throw BuildFSError.badTarget(path: target, reason: "exists and is not a directory") }
            let dir = try FileDescriptor.open(target, O_RDONLY | O_DIRECTORY)
            guard try dir.directoryEntries().isEmpty else {
                throw BuildFSError.badTarget(path: target, reason: "target directory is not empty; export into a new or empty directory")
            }
            return dir
        }
        try makeDirectories(target)
        return try FileDescriptor.open(target, O_RDONLY | O_DIRECTORY)
    }

    /// Walks the snapshot, creating directories and symlinks and planning
    /// the rest. Every copy of a shared subtree is written.
    private func expand(_ rootID: ObjectID, rootDir: FileDescriptor, plan: inout Plan) throws {
        var walk = TreeWalk(skippingWalkedTrees: false)
        try walk.walk(rootID, at: [UInt8](), read: { id, _ in try store.getTree(id) }, visit: { entry, path in
            let entryPath = path.isEmpty ? entry.name : path + [0x2F] + entry.name
            switch entry.content {
            case .directory:
                let rc = withCString(entryPath) { mkdirat(rootDir.raw, $0, 0o700) }
                guard rc == 0 else { throw SystemCallError("create directory", rootDir.childPath(entryPath)) }
                plan.directories.append((entryPath, entry))
                return entryPath
            case let .symlink(target):
                let rc = withCString(target) { t in withCString(entryPath) { symlinkat(t, rootDir.raw, $0) } }
                guard rc == 0 else { throw SystemCallError("create symlink", rootDir.childPath(entryPath)) }
                try applyMetadata(entry, at: entryPath, rootDir: rootDir, followLinks: false)
            case let .file(size, chunks, group):
                if group != 0, let first = plan.firstNameOfGroup[group] {
                    plan.links.append((first, entryPath))
                    return nil
                }
                if group != 0 { plan.firstNameOfGroup[group] = entryPath }
                plan.files.append(FileWrite(path: entryPath, entry: entry, size: size, chunks: chunks))
            }
            return nil
        })
    }

    private func write(_ file: FileWrite, rootDir: FileDescriptor) throws {
        let fd = try rootDir.openAt(file.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        for chunk in file.chunks {
            let content = try store.get(chunk.id, maxLength: Int(chunk.length))
            guard content.count == Int(chunk.length) else {
                throw BuildFSError.corruptObject(id: chunk.id.hex, reason: "is \(content.count) bytes, the tree says \(chunk.length)")
            }
            try content.withUnsafeBytes { try fd.writeAll($0) }
        }
        try setOwnerModeTime(file.entry, fd: fd)
    }

    /// Owner first (chown clears setuid bits), then mode, then mtime last.
    private func setOwnerModeTime(_ entry: TreeEntry, fd: FileDescriptor) throws {
        if fchown(fd.raw, entry.uid, entry.gid) != 0 && errno != EPERM {
            throw SystemCallError("chown", fd.path)
        }
        guard fchmod(fd.raw, mode_t(entry.mode)) == 0 else { throw SystemCallError("chmod", fd.path) }
        var times = [timespec(entry.mtime), timespec(entry.mtime)]
        guard futimens(fd.raw, &times) == 0 else { throw SystemCallError("set mtime of", fd.path) }
    }

    private func applyMetadata(_ entry: TreeEntry, at path: [UInt8], rootDir: FileDescriptor, followLinks: Bool) throws {
        let display = rootDir.childPath(path)
        let flags = followLinks ? 0 : AT_SYMLINK_NOFOLLOW
        try withCString(path) { cPath in
            if fchownat(rootDir.raw, cPath, entry.uid, entry.gid, flags) != 0 && errno != EPERM {
                throw SystemCallError("chown", display)
            }
            // Symlinks have no mode of their own on Linux.
            if followLinks && fchmodat(rootDir.raw, cPath, mode_t(entry.mode), 0) != 0 {
                throw SystemCallError("chmod", display)
            }
            var times = [timespec(entry.mtime), timespec(entry.mtime)]
            guard utimensat(rootDir.raw, cPath, &times, flags) == 0 else {
                throw SystemCallError("set mtime of", display)
            }
        }
    }
}

extension timespec {
    init(_ time: Timestamp) {
        self.init(tv_sec: Int(time.seconds), tv_nsec: Int(time.nanoseconds))
    }
}
