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
        return inode.withLowerState { state in loaded(&state, inode) }
    }

    /// `state`, read from the inode's xattrs if it was not yet (under the
    /// inode's lower-state lock).
    private func loaded(_ state: inout LowerState?, _ inode: Inode) -> LowerState {
        if let state { return state }
        var fresh = LowerState()
        if inode.isDirectory {
            fresh.pendingTree = Xattr.get(inode.procPath, LowerSnapshot.treeAttribute).flatMap(UpperLayout.decodeTreeID)
        } else if inode.isRegularFile, let laidOut = lower?.takeLaidOut(inode.key) {
            fresh.stub = laidOut.stub
            fresh.indexed = laidOut.indexed
        } else if inode.isRegularFile {
            fresh.stub = Xattr.get(inode.procPath, LowerSnapshot.stubAttribute).flatMap(StubReference.decode)
            fresh.indexed = Xattr.get(inode.procPath, LowerSnapshot.indexedAttribute) != nil
        }
        state = fresh
        return fresh
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
            state?.content = nil
        }
    }

    /// What reads of the inode are served from while it is a stub: its
    /// chunk list, read from the snapshot once and kept with the inode.
    /// Nil once it is hydrated (the upper file is current then).
    /// Every read asks: one lock, taken once.
    func stubContent(_ inode: Inode) throws -> StubContent? {
        guard let lower, inode.isRegularFile else { return nil }
        return try inode.withLowerState { (state) throws(Errno) -> StubContent? in
            guard let stub = loaded(&state, inode).stub else { return nil }
            if let content = state?.content { return content }
            do {
                let content = StubContent(chunks: try lower.chunkList(of: stub))
                state?.content = content
                return content
            } catch {
                log("opening a file of snapshot '\(lower.key)': \(error)")
                throw Errno(code: EIO)
            }
        }
    }

    /// The preferred I/O size a stat shows (st_blksize). stdio sizes its
    /// buffer by it (up to BUFSIZ, 8 KiB), and through FUSE every write()
    /// is a round trip (two when it starts inside a page the kernel has not
    /// cached, as most of them do): the upper file system's 4 KiB doubled
    /// the requests of `ar` and `ld` writing a library.
    static let preferredIOSize = 128 << 10

    /// Attributes as the user sees them: a preferred I/O size of a FUSE
    /// request's worth, and, over a snapshot, a stub is sparse on disk but
    /// not to `du`, a hard link's index entry is not one of its names, and
    /// the index directory is not the root's.
    func presented(_ inode: Inode, _ st: stat) -> stat {
        var shown = st
        shown.st_blksize = Self.preferredIOSize
        guard let state = lowerState(inode) else { return shown }
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
