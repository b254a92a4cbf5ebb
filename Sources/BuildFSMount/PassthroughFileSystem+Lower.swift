import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc

/// How the passthrough meets the snapshot under it (see LowerSnapshot).
/// Without a snapshot every method here is a no-op.
extension PassthroughFileSystem {
    /// The inode's lower state, read from its xattrs the first time.
    func lowerState(_ inode: Inode) -> LowerState? {
        guard lower != nil, !inode.isSymlink else { return nil }
        return inode.withLowerState { state in
            if let state { return state }
            var fresh = LowerState()
            if inode.isDirectory {
                fresh.pendingTree = Xattr.get(inode.procPath, LowerSnapshot.treeAttribute).flatMap(UpperLayout.decodeTreeID)
            } else if inode.isRegularFile {
                fresh.stub = Xattr.get(inode.procPath, LowerSnapshot.stubAttribute).flatMap(StubReference.decode)
                fresh.indexed = Xattr.get(inode.procPath, LowerSnapshot.indexedAttribute) != nil
            }
            state = fresh
            return fresh
        }
    }

    /// Every operation on a directory's names first lays out its snapshot
    /// entries, and those of its subdirectories. A subdirectory is laid out
    /// before anyone can see it, so no reader ever sees a directory's size,
    /// mtime or ctime change under it (tar would report every directory as
    /// "changed as we read it"). The cost is one level ahead of the walk.
    func ensureExpanded(_ directory: Inode) throws {
        guard let lower, let state = lowerState(directory), !state.ready else { return }
        try directory.withLowerState { state in
            guard state?.ready == false else { return }
            do {
                if let tree = state?.pendingTree {
                    try lower.expand(directory.fd, tree: tree)
                    state?.pendingTree = nil
                }
                try lower.expandSubdirectories(of: directory.fd)
            } catch let error as BuildFSError {
                log("expanding a directory of snapshot '\(lower.key)': \(error.description)")
                throw Errno(code: EIO)
            }
            state?.ready = true
        }
    }

    /// The root is seen as soon as the mount is up: lay it out (and its
    /// subdirectories) before.
    func layOutRoot() throws {
        do {
            try ensureExpanded(table.root)
        } catch {
            throw BuildFSError.usage("cannot lay out the root of snapshot '\(lower?.key ?? "")' in \(upperPath); see the log")
        }
    }

    /// Before the first write or truncate, a stub gets its bytes.
    func hydrateIfStub(_ inode: Inode) throws {
        guard let lower, lowerState(inode)?.stub != nil else { return }
        try inode.withLowerState { state in
            guard let stub = state?.stub else { return }
            do {
                try lower.hydrate(inode, stub: stub)
            } catch let error as BuildFSError {
                log("copying up a file of snapshot '\(lower.key)': \(error.description)")
                throw Errno(code: EIO)
            }
            state?.stub = nil
        }
    }

    /// Attributes as the user sees them: a stub is sparse on disk but not to
    /// `du`, a hard link's index entry is not one of its names, and the
    /// index directory is not the root's.
    func presented(_ inode: Inode, _ st: stat) -> stat {
        guard let state = lowerState(inode) else { return st }
        var shown = st
        // The hidden link index is a subdirectory of the root: not counted.
        if inode === table.root && shown.st_nlink > 2 { shown.st_nlink -= 1 }
        if state.stub != nil { shown.st_blocks = (st.st_size + 511) / 512 }
        if state.indexed && shown.st_nlink > 1 { shown.st_nlink -= 1 }
        return shown
    }

    /// The link index at the upper root is not part of the tree.
    func isInternal(_ parent: Inode, _ name: UnsafePointer<CChar>) -> Bool {
        lower != nil && parent === table.root && strcmp(name, LowerSnapshot.internalDirectory) == 0
    }

    /// A directory whose snapshot entries are not laid out yet looks empty
    /// in the upper directory: rmdir and rename over it must see its
    /// entries, and a directory moved elsewhere must stay laid out.
    func expandChild(_ parent: Inode, _ name: UnsafePointer<CChar>) throws {
        guard lower != nil else { return }
        guard let (child, _) = try? lookupEntry(parent, name) else { return }
        defer { table.forget(table.number(of: child), count: 1) }
        if child.isDirectory { try ensureExpanded(child) }
    }

    func log(_ message: String) {
        var line = Array("buildfs daemon: \(message)\n".utf8)
        _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}

/// An open stub, read from the store. Once the file is hydrated (another
/// descriptor wrote to it), reads go to the upper file instead.
final class StubReadHandle: @unchecked Sendable {
    let inode: Inode
    let chunks: [ChunkRef]
    /// offsets[i] is where chunk i starts.
    let offsets: [UInt64]

    init(inode: Inode, chunks: [ChunkRef]) {
        self.inode = inode
        self.chunks = chunks
        var offsets: [UInt64] = []
        var position: UInt64 = 0
        for chunk in chunks {
            offsets.append(position)
            position += UInt64(chunk.length)
        }
        self.offsets = offsets
    }

    /// File handles with this bit set are StubReadHandles; others are
    /// descriptors. Pointers never use the top bit.
    static let tag: UInt64 = 1 << 63

    var fileHandle: UInt64 { UInt64(UInt(bitPattern: Unmanaged.passRetained(self).toOpaque())) | StubReadHandle.tag }

    static func from(_ fh: UInt64) -> StubReadHandle? {
        guard fh & tag != 0 else { return nil }
        return Unmanaged<StubReadHandle>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(fh & ~tag))!).takeUnretainedValue()
    }

    static func release(_ fh: UInt64) {
        Unmanaged<StubReadHandle>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(fh & ~tag))!).release()
    }

    /// Up to `size` bytes at `offset`, from the chunks covering them.
    func read(_ lower: LowerSnapshot, size: Int, offset: UInt64) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        // The first chunk ending after offset.
        var low = 0, high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            if offsets[mid] + UInt64(chunks[mid].length) <= offset { low = mid + 1 } else { high = mid }
        }
        var index = low
        var position = offset
        while out.count < size, index < chunks.count {
            let bytes = try lower.chunk(chunks[index])
            let start = Int(position - offsets[index])
            let take = min(size - out.count, bytes.count - start)
            out.append(contentsOf: bytes[start..<start + take])
            position += UInt64(take)
            index += 1
        }
        lower.counters.bytesServed.add(UInt64(out.count), ordering: .relaxed)
        return out
    }
}
