import CLinuxCalls
import Glibc

extension SnapshotLayer {
    /// Expands the pending directory `directory` (an O_PATH descriptor):
    /// creates the entries of `tree` in it and clears its mark.
    /// A directory still marked pending holds only what an expansion killed
    /// midway made (nothing else can reach it before the mark is gone), so a
    /// new expansion first clears it. The mtime is put back: expanding is
    /// not a change.
    public func expand(_ directory: Int32, tree treeID: ObjectID) throws {
        let tree = try self.tree(treeID)
        var before = stat()
        try sys("fstatat") { fstatat(directory, "", &before, BUILDFS_AT_EMPTY_PATH) }
        let listing = try sys("openat") { openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        for name in try FileDescriptor(raw: listing, path: "upper").directoryEntries() {
            withCString(name) { cName in
                if unlinkat(directory, cName, 0) != 0 && errno == EISDIR { _ = unlinkat(directory, cName, AT_REMOVEDIR) }
            }
        }
        // In a setgid directory new entries take its group (and new
        // directories its setgid bit): then owner and mode are always set.
        let inherits = before.st_mode & S_ISGID != 0
        var noted: [InodeKey] = []
        do {
            for entry in tree.entries {
                if let key = try place(entry, from: treeID, in: directory, inheritsGroup: inherits) { noted.append(key) }
            }
        } catch {
            forgetStubNotes(noted)
            throw error
        }
        var times = [before.st_atim, before.st_mtim]
        try sys("utimensat") { utimensat(directory, "", &times, BUILDFS_AT_EMPTY_PATH) }
        try UpperLayout.clearPending("/proc/self/fd/\(directory)")
        counters.directoriesExpanded.add(1, ordering: .relaxed)
    }

    /// Expands every pending subdirectory of `directory` (their own
    /// subdirectories stay pending).
    public func expandSubdirectories(of directory: Int32) throws {
        let listing = try sys("openat") { openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        for name in try FileDescriptor(raw: listing, path: "upper").directoryEntries(onlyDirectories: true) {
            let child = try withCString(name) { cName in try sys("openat") { openat(directory, cName, BUILDFS_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) } }
            defer { close(child) }
            if let tree = UpperLayout.pendingTree(at: .file("/proc/self/fd/\(child)")) {
                try expand(child, tree: tree)
            }
        }
    }

    /// Creates one entry with its metadata. Few calls per file: the mode is
    /// given at creation (the daemon's umask is 0), owner and mode are
    /// changed only when they differ from the daemon's defaults. Returns the
    /// key of a stub it noted (see `stubNotes`).
    private func place(_ entry: TreeEntry, from treeID: ObjectID, in directory: Int32,
                       inheritsGroup: Bool) throws -> InodeKey? {
        var times = [timespec(tv_sec: Int(entry.mtime.seconds), tv_nsec: Int(entry.mtime.nanoseconds)),
                     timespec(tv_sec: Int(entry.mtime.seconds), tv_nsec: Int(entry.mtime.nanoseconds))]
        return try withCString(entry.name) { name -> InodeKey? in
            switch entry.content {
            case let .directory(subtree):
                try sys("mkdirat") { mkdirat(directory, name, 0o700) }
                let fd = try sys("openat") { openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                defer { close(fd) }
                try UpperLayout.markPending(fd, tree: subtree)
                try setOwnerMode(fd, entry, createdWith: 0o700, always: inheritsGroup)
                try sys("futimens") { futimens(fd, &times) }
                return nil
            case let .symlink(target):
                _ = try withCString(target) { cTarget in try sys("symlinkat") { symlinkat(cTarget, directory, name) } }
                if entry.uid != 0 || entry.gid != 0 || inheritsGroup {
                    _ = fchownat(directory, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW)
                }
                try sys("utimensat") { utimensat(directory, name, &times, AT_SYMLINK_NOFOLLOW) }
                return nil
            case let .file(size, _, group):
                if group != 0, try linkFromIndex(group, into: directory, name: name) { return nil }
                let mode = mode_t(entry.mode)
                let fd = try sys("openat") { openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
                defer { close(fd) }
                if size > 0 { try sys("ftruncate") { ftruncate(fd, off_t(size)) } }
                let stub = StubReference(tree: treeID, name: entry.name)
                try UpperLayout.markStub(fd, stub, indexed: group != 0)
                try setOwnerMode(fd, entry, createdWith: mode, always: inheritsGroup)
                try sys("futimens") { futimens(fd, &times) }
                if group != 0 { try addToIndex(group, directory: directory, name: name) }
                return noteStub(fd, stub: stub, indexed: group != 0)
            }
        }
    }

    /// chown clears setuid/setgid bits, so the mode is set again after it.
    private func setOwnerMode(_ fd: Int32, _ entry: TreeEntry, createdWith mode: mode_t, always: Bool) throws {
        var needsMode = mode != mode_t(entry.mode) || always
        if entry.uid != 0 || entry.gid != 0 || always {
            _ = fchown(fd, entry.uid, entry.gid)
            needsMode = needsMode || entry.mode & 0o6000 != 0
        }
        if needsMode { try sys("fchmod") { fchmod(fd, mode_t(entry.mode)) } }
    }

    // MARK: the hard link index

    private static func groupName(_ group: UInt64) -> String { String(group, radix: 16) }

    /// Links `name` to the group's inode when another name of it was
    /// created already (in any directory); false when this is the first.
    private func linkFromIndex(_ group: UInt64, into directory: Int32, name: UnsafePointer<CChar>) throws -> Bool {
        try linkIndexLock.withLock { _ in
            let rc = linkat(linksFD, SnapshotLayer.groupName(group), directory, name, 0)
            if rc == 0 { return true }
            if errno == ENOENT { return false }
            throw SystemCallError("linkat")
        }
    }

    private func addToIndex(_ group: UInt64, directory: Int32, name: UnsafePointer<CChar>) throws {
        try linkIndexLock.withLock { _ in
            if linkat(directory, name, linksFD, SnapshotLayer.groupName(group), 0) != 0 && errno != EEXIST {
                throw SystemCallError("linkat")
            }
        }
    }
}
