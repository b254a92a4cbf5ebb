import BuildFSCore
import CLinuxCalls
import Glibc

/// Creating, linking, renaming and removing names.
extension PassthroughFileSystem {
    /// Makes a name with `make` (as the caller unless `asDaemon`), then
    /// answers with its entry.
    private func create(_ request: Request, in parent: UInt64, _ name: UnsafePointer<CChar>,
                        asDaemon: Bool = false, _ make: (Inode) throws -> Void) {
        replying(request) {
            let directory = try table.inode(parent)
            try snapshot?.ensureExpanded(directory)
            if snapshot?.isInternal(directory, name) == true { throw SystemCallError("create", code: EPERM) }
            if asDaemon { try make(directory) } else { try asCaller(request) { try make(directory) } }
            let (inode, st) = try table.lookUp(name, in: directory)
            request.reply(entry: entry(inode, st))
        }
    }

    func mkdir(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>, _ mode: mode_t, umask: mode_t) {
        create(request, in: parent, name) { directory in
            try sys("mkdirat") { mkdirat(directory.fd, name, creationMode(mode, umask: umask, in: directory)) }
        }
    }

    func mknod(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>, _ mode: mode_t, _ rdev: dev_t,
               umask: mode_t) {
        create(request, in: parent, name) { directory in
            try sys("mknodat") { mknodat(directory.fd, name, creationMode(mode, umask: umask, in: directory), rdev) }
        }
    }

    func symlink(_ request: Request, _ target: UnsafePointer<CChar>, _ parent: UInt64, _ name: UnsafePointer<CChar>) {
        create(request, in: parent, name) { directory in try sys("symlinkat") { symlinkat(target, directory.fd, name) } }
    }

    /// A link makes no new inode, so it keeps the daemon's identity: linking
    /// by descriptor (AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH, which a
    /// switched fsuid drops. The kernel has checked the caller's rights.
    func link(_ request: Request, _ ino: UInt64, _ newParent: UInt64, _ newName: UnsafePointer<CChar>) {
        create(request, in: newParent, newName, asDaemon: true) { directory in
            let inode = try table.inode(ino)
            try sys("linkat") { linkat(inode.fd, "", directory.fd, newName, BUILDFS_AT_EMPTY_PATH) }
        }
    }

    func unlink(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>) {
        replying(request) {
            let directory = try table.inode(parent)
            try snapshot?.ensureExpanded(directory)
            if snapshot?.isInternal(directory, name) == true { throw SystemCallError("unlink", code: ENOENT) }
            holdIfLastLink(directory, name)
            try sys("unlinkat") { unlinkat(directory.fd, name, 0) }
            request.replySuccess()
        }
    }

    func rmdir(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>) {
        replying(request) {
            let directory = try table.inode(parent)
            try snapshot?.ensureExpanded(directory)
            if snapshot?.isInternal(directory, name) == true { throw SystemCallError("rmdir", code: ENOENT) }
            try snapshot?.expandChild(directory, name)
            try sys("unlinkat") { unlinkat(directory.fd, name, AT_REMOVEDIR) }
            request.replySuccess()
        }
    }

    /// Plain renames, RENAME_NOREPLACE and RENAME_EXCHANGE (the kernel
    /// passes the flags through).
    func rename(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>,
                _ newParent: UInt64, _ newName: UnsafePointer<CChar>, _ flags: UInt32) {
        replying(request) {
            let source = try table.inode(parent), target = try table.inode(newParent)
            try snapshot?.ensureExpanded(source)
            try snapshot?.ensureExpanded(target)
            if snapshot?.isInternal(source, name) == true || snapshot?.isInternal(target, newName) == true { throw SystemCallError("rename", code: EPERM) }
            // Replacing a directory needs it empty: see its snapshot entries;
            // and a directory moved keeps the "expanded before seen" rule.
            try snapshot?.expandChild(target, newName)
            try snapshot?.expandChild(source, name)
            if flags & UInt32(BUILDFS_RENAME_EXCHANGE) == 0 { holdIfLastLink(target, newName) }
            let from = source.fd, to = target.fd
            if flags == 0 {
                try sys("renameat") { renameat(from, name, to, newName) }
            } else {
                try sys("renameat2") { buildfs_renameat2(from, name, to, newName, flags) }
            }
            request.replySuccess()
        }
    }

    /// Before a regular file's last name goes (unlink, rename over it): a
    /// program may hold it open, unknown to the daemon (no-open mode), so
    /// its inode's descriptor, if evicted, is reopened while a handle still
    /// can; from then on it is kept (Inode.isEvictable).
    func holdIfLastLink(_ directory: Inode, _ name: UnsafePointer<CChar>) {
        var st = stat()
        guard fstatat(directory.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_mode & S_IFMT == S_IFREG,
              st.st_nlink == 1 else { return }
        _ = table.known(InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))?.fd
    }

    /// open(O_CREAT): creates the file as the caller and opens it (in
    /// no-open mode the descriptor is closed at once: see
    /// PassthroughFileSystem+Files).
    func create(_ request: Request, _ parent: UInt64, _ name: UnsafePointer<CChar>, _ mode: mode_t,
                flags requested: Int32, umask: mode_t, killSetID: Bool) {
        replying(request) {
            let directory = try table.inode(parent)
            try snapshot?.ensureExpanded(directory)
            if snapshot?.isInternal(directory, name) == true { throw SystemCallError("create", code: EPERM) }
            let flags = openFlags(requested) | O_CREAT
            let fd = try asCaller(request) {
                try sys("openat") { openat(directory.fd, name, flags, creationMode(mode, umask: umask, in: directory)) }
            }
            var handedOver = false  // the reply made `fd` the open file's handle
            defer { if !handedOver { close(fd) } }
            var (inode, st) = try table.lookUp(name, in: directory)
            // O_TRUNC of a file that existed after all (see dropSetID).
            if killSetID && st.st_mode & (S_ISUID | S_ISGID) != 0 {
                try dropSetID(inode)
                st = try statOf(inode)
            }
            if let backing = table.passthrough.backingID(for: inode) {
                request.reply(created: entry(inode, st), open: passthroughFile(backing, flags: requested))
            } else {
                handedOver = !servesFilesWithoutOpens
                let handle = RegularFileHandle(descriptor: handedOver ? fd : nil)
                request.reply(created: entry(inode, st), open: openFile(handle, flags: requested))
            }
        }
    }
}
