import BuildFSCore
import Synchronization

/// What the snapshot under the mount still owns of an inode.
struct LayerState: Sendable {
    /// A file not copied up yet: its content is in the store.
    var stub: StubReference?
    /// The stub's chunk list, once a read needed it.
    var content: StubContent?
    /// A directory not expanded yet: its entries are this tree's.
    var pendingTree: ObjectID?
    /// A directory whose entries and whose subdirectories' entries are
    /// expanded (in this daemon's lifetime): names in it can be used.
    var ready = false
    /// A hard-linked file also linked into the link index.
    var indexed = false
}

/// An inode's layer state behind its own lock. A separate object, made on
/// first use, so that inodes of a mount without a snapshot (all of them,
/// usually) pay one pointer for it instead of the state and a lock.
final class LayerStateCell: Sendable {
    /// Nil until read from the inode's xattrs. The lock also serializes
    /// expansion and copy-up of the inode.
    let state = Mutex<LayerState?>(nil)
    /// Held while a stub's bytes go into the kernel's page cache
    /// (SnapshotSide.fillPageCache); true once they went. Copy-up takes it
    /// before `state`, so no write to the file can start during a fill (the
    /// kernel would let the fill overwrite it). Reads never take it: a fill
    /// may wait for a page a read of the same file holds locked.
    let pageCacheFill = Mutex<Bool>(false)
}
