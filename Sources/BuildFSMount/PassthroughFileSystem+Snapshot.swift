import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc

/// How the passthrough meets the snapshot under it (see SnapshotLayer).
/// Without a snapshot every method here is a no-op.
extension PassthroughFileSystem {
    /// The inode's layer state, read from its xattrs the first time.
    func layerState(_ inode: Inode) -> LayerState? {
        guard snapshot != nil, !inode.isSymlink else { return nil }
        return inode.withLayerState { state in loaded(&state, inode) }
    }

    /// `state`, read from the inode's xattrs if it was not yet (under the
    /// inode's layer-state lock).
    private func loaded(_ state: inout LayerState?, _ inode: Inode) -> LayerState {
        if let state { return state }
        var fresh = LayerState()
        if inode.isDirectory {
            fresh.pendingTree = UpperLayout.pendingTree(at: .file(inode.procPath))
        } else if inode.isRegularFile, let note = snapshot?.takeStubNote(inode.key) {
            fresh.stub = note.stub
            fresh.indexed = note.indexed
        } else if inode.isRegularFile {
            fresh.stub = UpperLayout.stub(at: .file(inode.procPath))
            fresh.indexed = UpperLayout.isIndexed(at: .file(inode.procPath))
        }
        state = fresh
        return fresh
    }

    /// Every operation on a directory's names first expands it,
    /// and its subdirectories. A subdirectory is expanded
    /// before anyone can see it, so no reader ever sees a directory's size,
    /// mtime or ctime change under it (tar would report every directory as
    /// "changed as we read it"). The cost is one level ahead of the walk.
    func ensureExpanded(_ directory: Inode) throws {
        guard let snapshot, let state = layerState(directory), !state.ready else { return }
        try directory.withLayerState { state in
            guard state?.ready == false else { return }
            do {
                if let tree = state?.pendingTree {
                    try snapshot.expand(directory.fd, tree: tree)
                    state?.pendingTree = nil
                }
                try snapshot.expandSubdirectories(of: directory.fd)
            } catch {
                // A failed call keeps its errno (ENOSPC stays ENOSPC); a
                // store that fails is an I/O error.
                log("expanding a directory of snapshot '\(snapshot.key)': \(error)")
                throw SystemCallError("expand", code: (error as? SystemCallError)?.code ?? EIO)
            }
            state?.ready = true
        }
    }

    /// The root is seen as soon as the mount is up: expand it (and its
    /// subdirectories) before.
    func expandRoot() throws {
        do {
            try ensureExpanded(table.root)
        } catch {
            throw BuildFSError.usage("cannot expand the root of snapshot '\(snapshot?.key ?? "")' in \(upperPath); see the log")
        }
    }

    /// Before the first write or truncate, a stub gets its bytes.
    func copyUpIfStub(_ inode: Inode) throws {
        guard let snapshot, layerState(inode)?.stub != nil else { return }
        try inode.withLayerState { state in
            guard let stub = state?.stub else { return }
            do {
                try snapshot.copyUp(inode.procPath, stub: stub)
            } catch {
                log("copying up a file of snapshot '\(snapshot.key)': \(error)")
                throw SystemCallError("copy up", code: (error as? SystemCallError)?.code ?? EIO)
            }
            state?.stub = nil
            state?.content = nil
        }
    }

    /// What reads of the inode are served from while it is a stub: its
    /// chunk list, read from the snapshot once and kept with the inode.
    /// Nil once it is copied up (the upper file is current then).
    /// Every read asks: one lock, taken once.
    func stubContent(_ inode: Inode) throws -> StubContent? {
        guard let snapshot, inode.isRegularFile else { return nil }
        return try inode.withLayerState { (state) throws(SystemCallError) -> StubContent? in
            guard let stub = loaded(&state, inode).stub else { return nil }
            if let content = state?.content { return content }
            do {
                let content = StubContent(chunks: try snapshot.chunkList(of: stub))
                state?.content = content
                return content
            } catch {
                log("opening a file of snapshot '\(snapshot.key)': \(error)")
                throw SystemCallError("open", code: EIO)
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
        guard let state = layerState(inode) else { return shown }
        // The hidden link index is a subdirectory of the root: not counted.
        if inode === table.root && shown.st_nlink > 2 { shown.st_nlink -= 1 }
        if state.stub != nil { shown.st_blocks = (st.st_size + 511) / 512 }
        if state.indexed && shown.st_nlink > 1 { shown.st_nlink -= 1 }
        return shown
    }

    /// The link index at the upper root is not part of the tree.
    func isInternal(_ parent: Inode, _ name: UnsafePointer<CChar>) -> Bool {
        snapshot != nil && parent === table.root && strcmp(name, UpperLayout.internalDirectory) == 0
    }

    /// A directory whose snapshot entries are not created yet looks empty
    /// in the upper directory: rmdir and rename over it must see its
    /// entries, and a directory moved elsewhere must stay expanded.
    func expandChild(_ parent: Inode, _ name: UnsafePointer<CChar>) throws {
        guard snapshot != nil else { return }
        guard let (child, _) = try? lookupEntry(parent, name) else { return }
        defer { table.forget(table.number(of: child), count: 1) }
        if child.isDirectory { try ensureExpanded(child) }
    }

    func log(_ message: String) {
        var line = Array("buildfs daemon: \(message)\n".utf8)
        _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
