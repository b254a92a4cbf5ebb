import BuildFSCore
import CLinuxCalls
import Glibc

/// The daemon's snapshot side: how requests on the upper directory meet the
/// snapshot layered under it (SnapshotLayer, which knows no FUSE). Each
/// inode keeps its LayerState, read once; every name operation first
/// expands its directory, every change to a stub first copies it up, and
/// what a user sees (stat, the root's listing) hides the layout. A mount
/// without a snapshot has none (PassthroughFileSystem.snapshot is nil).
final class SnapshotSide: Sendable {
    let layer: SnapshotLayer
    let table: InodeTable
    let upperPath: String

    init(layer: SnapshotLayer, table: InodeTable, upperPath: String) {
        self.layer = layer
        self.table = table
        self.upperPath = upperPath
    }

    /// The inode's layer state, read from its xattrs the first time.
    func layerState(_ inode: Inode) -> LayerState? {
        guard !inode.isSymlink else { return nil }
        return inode.withLayerState { state in loaded(&state, inode) }
    }

    /// `state`, read from the inode's xattrs if it was not yet (under the
    /// inode's layer-state lock).
    private func loaded(_ state: inout LayerState?, _ inode: Inode) -> LayerState {
        if let state { return state }
        var fresh = LayerState()
        if inode.isDirectory {
            fresh.pendingTree = UpperLayout.pendingTree(at: .file(inode.procPath))
        } else if inode.isRegularFile, let note = layer.takeStubNote(inode.key) {
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
        guard let state = layerState(directory), !state.ready else { return }
        try directory.withLayerState { state in
            guard state?.ready == false else { return }
            do {
                if let tree = state?.pendingTree {
                    try layer.expand(directory.fd, tree: tree)
                    state?.pendingTree = nil
                }
                try layer.expandSubdirectories(of: directory.fd)
            } catch {
                // A failed call keeps its errno (ENOSPC stays ENOSPC); a
                // store that fails is an I/O error.
                daemonLog("expanding a directory of snapshot '\(layer.key)': \(error)")
                throw SystemCallError("expand", code: (error as? SystemCallError)?.code ?? EIO)
            }
            state?.ready = true
        }
    }

    /// Expands, ahead of a reader walking `directory`, the subdirectories
    /// of its subdirectories (PageCacheFiller): when the reader lists one
    /// of those, its own expansion one level ahead is done. Failures are
    /// left to the listing, which reports them.
    func expandSubdirectoriesAhead(of directory: Inode) {
        let listing = openat(directory.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listing >= 0,
              let names = try? FileDescriptor(raw: listing, path: upperPath).directoryEntries(onlyDirectories: true) else { return }
        for name in names {
            withCString(name) { cName in
                if !isInternal(directory, cName) { try? expandChild(directory, cName) }
            }
        }
    }

    /// The root is seen as soon as the mount is up: expand it (and its
    /// subdirectories) before.
    func expandRoot() throws {
        do {
            try ensureExpanded(table.root)
        } catch {
            throw BuildFSError.usage("cannot expand the root of snapshot '\(layer.key)' in \(upperPath); see the log")
        }
    }

    /// Before the first write or truncate, a stub gets its bytes. Not
    /// while its bytes go into the page cache (PageCacheFiller).
    func copyUpIfStub(_ inode: Inode) throws {
        guard layerState(inode)?.stub != nil else { return }
        try inode.withPageCacheFill { _ in try copyUp(inode) }
    }

    private func copyUp(_ inode: Inode) throws {
        try inode.withLayerState { state in
            guard let stub = state?.stub else { return }
            do {
                try layer.copyUp(inode.procPath, stub: stub)
            } catch {
                daemonLog("copying up a file of snapshot '\(layer.key)': \(error)")
                throw SystemCallError("copy up", code: (error as? SystemCallError)?.code ?? EIO)
            }
            state?.stub = nil
            state?.content = nil
        }
    }

    /// The stub content of an inode whose layer state was read already
    /// (an OPEN of it did), found without touching its descriptor: what a
    /// READ outside the descriptor gate may use (PassthroughFileSystem.serve).
    func knownStubContent(_ inode: Inode) -> StubContent? {
        guard inode.isRegularFile else { return nil }
        return inode.withLayerState { state in state?.stub != nil ? state?.content : nil }
    }

    /// What reads of the inode are served from while it is a stub: its
    /// chunk list, read from the snapshot once and kept with the inode.
    /// Nil once it is copied up (the upper file is current then).
    /// Every read asks: one lock, taken once.
    func stubContent(_ inode: Inode) throws -> StubContent? {
        guard inode.isRegularFile else { return nil }
        return try inode.withLayerState { (state) throws(SystemCallError) -> StubContent? in
            guard let stub = loaded(&state, inode).stub else { return nil }
            if let content = state?.content { return content }
            do {
                let content = StubContent(chunks: try layer.chunkList(of: stub))
                state?.content = content
                return content
            } catch {
                daemonLog("opening a file of snapshot '\(layer.key)': \(error)")
                throw SystemCallError("open", code: EIO)
            }
        }
    }

    /// Attributes as the user sees them: a stub is sparse on disk but not
    /// to `du`, a hard link's index entry is not one of its names, and the
    /// index directory is not the root's.
    func presented(_ inode: Inode, _ st: stat) -> stat {
        var shown = st
        guard let state = layerState(inode) else { return shown }
        // The hidden link index is a subdirectory of the root: not counted.
        if inode === table.root && shown.st_nlink > 2 { shown.st_nlink -= 1 }
        if state.stub != nil { shown.st_blocks = (st.st_size + 511) / 512 }
        if state.indexed && shown.st_nlink > 1 { shown.st_nlink -= 1 }
        return shown
    }

    /// The link index at the upper root is not part of the tree.
    func isInternal(_ parent: Inode, _ name: UnsafePointer<CChar>) -> Bool {
        parent === table.root && strcmp(name, UpperLayout.internalDirectory) == 0
    }

    /// A directory whose snapshot entries are not created yet looks empty
    /// in the upper directory: rmdir and rename over it must see its
    /// entries, and a directory moved elsewhere must stay expanded.
    /// The child is looked up like the kernel would (and forgotten at
    /// once), so that it is expanded through the one Inode, and under the
    /// one layer-state lock, any concurrent request on it also gets.
    func expandChild(_ parent: Inode, _ name: UnsafePointer<CChar>) throws {
        guard let (child, _) = try? table.lookUp(name, in: parent) else { return }
        defer { table.forget(table.number(of: child), count: 1) }
        if child.isDirectory { try ensureExpanded(child) }
    }
}
