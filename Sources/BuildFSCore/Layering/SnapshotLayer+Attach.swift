import CLinuxCalls
import Glibc

extension SnapshotLayer {
    /// The snapshot an earlier mount laid into `upper`, if any.
    public static func recorded(in upper: String) -> (root: ObjectID, key: String)? {
        UpperLayout.snapshot(at: .file(upper))
    }

    /// Prepares `upper` to show `ref` (nothing is copied: the root is only
    /// marked pending), or takes up the snapshot an earlier mount of the same
    /// upper directory laid into it. Nil for a mount without a snapshot.
    public static func attach(upper: String, store: any Store, ref: SnapshotRef?) throws -> SnapshotLayer? {
        let earlier = recorded(in: upper)
        let root: ObjectID, key: String
        if let ref {
            guard let rootID = ref.rootID else { throw BuildFSError.corruptObject(id: ref.root, reason: "bad root id") }
            if let earlier {
                guard earlier.root == rootID else {
                    throw BuildFSError.badTarget(path: upper, reason: "already holds snapshot '\(earlier.key)'; "
                                                 + "mount another snapshot on an empty --upper directory")
                }
            } else {
                try initialize(upper, root: rootID, key: ref.key)
            }
            (root, key) = (rootID, ref.key)
        } else if let earlier {
            (root, key) = earlier
        } else {
            return nil
        }
        // A remote store starts fetching the snapshot in the background,
        // in the order the job that committed it read it.
        if let opened = try ref ?? store.readRef(key: key), opened.rootID == root {
            try store.openSnapshot(opened, fetch: .inBackground)
        }
        _ = try store.getTree(root) // fail now, with a clear message, if the store lacks it
        let linksPath = upper + "/" + UpperLayout.linksDirectory
        let links = try sys("open", linksPath) { Glibc.open(linksPath, BUILDFS_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        return SnapshotLayer(store: store, root: root, key: key, linksFD: links, trace: ReadTraceRecorder(upper: upper))
    }

    /// First mount of a snapshot on an upper directory: it must be empty.
    /// The snapshot mark goes last, so a half-prepared directory is retried.
    private static func initialize(_ upper: String, root: ObjectID, key: String) throws {
        let dir = try FileDescriptor.open(upper, O_RDONLY | O_DIRECTORY)
        let present = try dir.directoryEntries().filter { $0 != Array(UpperLayout.internalDirectory.utf8) }
        guard present.isEmpty else {
            throw BuildFSError.badTarget(path: upper, reason: "upper directory is not empty; a mount --from needs an empty "
                                         + "--upper (or the one an earlier mount of the same snapshot used)")
        }
        try makeDirectories(upper + "/" + UpperLayout.linksDirectory, mode: 0o700)
        do throws(SystemCallError) {
            try UpperLayout.markPending(dir.raw, tree: root)
            try UpperLayout.markSnapshot(dir.raw, root: root, key: key)
        } catch {
            throw BuildFSError.usage("cannot set trusted.* xattrs on \(upper) (\(String(cString: strerror(error.code)))): "
                                     + "the upper directory must be on a file system with xattrs (ext4, xfs, btrfs, tmpfs), and mounting needs root")
        }
    }
}
