import BuildFSCore
import CLinuxCalls
import Glibc
import Synchronization

extension LowerSnapshot {
    /// Lays the entries of `tree` into the upper directory `directory`
    /// (an O_PATH descriptor) and marks it expanded. Each entry is made
    /// under a temporary name and renamed into place whole, so a daemon
    /// killed midway leaves whole entries and a directory still marked
    /// pending; the next expansion skips what exists and clears leftovers.
    /// The directory's mtime is put back: expanding is not a change.
    func expand(_ directory: Int32, tree treeID: ObjectID) throws {
        let tree = try self.tree(treeID)
        var before = stat()
        try check(fstatat(directory, "", &before, BUILDFS_AT_EMPTY_PATH))
        var existing = Set<[UInt8]>()
        let listing = try check(openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        for name in try FileDescriptor(raw: listing, path: "upper").directoryEntries() {
            if name.starts(with: Array(LowerSnapshot.stubPrefix.utf8)) {
                withCString(name) { _ = unlinkat(directory, $0, 0) }
            } else {
                existing.insert(name)
            }
        }
        for entry in tree.entries where !existing.contains(entry.name) {
            try place(entry, from: treeID, in: directory)
        }
        var times = [before.st_atim, before.st_mtim]
        try check(utimensat(directory, "", &times, BUILDFS_AT_EMPTY_PATH))
        try Xattr.remove("/proc/self/fd/\(directory)", LowerSnapshot.treeAttribute)
        counters.directoriesExpanded.add(1, ordering: .relaxed)
    }

    private func place(_ entry: TreeEntry, from treeID: ObjectID, in directory: Int32) throws {
        let temp = LowerSnapshot.stubPrefix + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var times = [timespec(tv_sec: Int(entry.mtime.seconds), tv_nsec: Int(entry.mtime.nanoseconds)),
                     timespec(tv_sec: Int(entry.mtime.seconds), tv_nsec: Int(entry.mtime.nanoseconds))]
        switch entry.content {
        case let .directory(subtree):
            try check(mkdirat(directory, temp, 0o700))
            let fd = try check(openat(directory, temp, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
            defer { close(fd) }
            try Xattr.set(fd, LowerSnapshot.treeAttribute, [1] + subtree.bytes)
            try setOwnerModeTime(fd, entry, &times)
        case let .symlink(target):
            try withCString(target) { try check(symlinkat($0, directory, temp)) }
            _ = fchownat(directory, temp, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW)
            try check(utimensat(directory, temp, &times, AT_SYMLINK_NOFOLLOW))
        case let .file(size, _, group):
            if group != 0, try linkFromIndex(group, into: directory, name: entry.name) { return }
            let fd = try check(openat(directory, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600))
            defer { close(fd) }
            try check(ftruncate(fd, off_t(size)))
            try Xattr.set(fd, LowerSnapshot.stubAttribute, StubReference(tree: treeID, name: entry.name).encode())
            if group != 0 { try Xattr.set(fd, LowerSnapshot.indexedAttribute, [1]) }
            try setOwnerModeTime(fd, entry, &times)
            if group != 0 { try addToIndex(group, directory: directory, temp: temp) }
        }
        let rc = withCString(entry.name) { buildfs_renameat2(directory, temp, directory, $0, UInt32(BUILDFS_RENAME_NOREPLACE)) }
        if rc != 0 {
            let error = Errno.current
            _ = unlinkat(directory, temp, entry.content.isDirectory ? AT_REMOVEDIR : 0)
            throw error
        }
    }

    /// chown before chmod (chown clears setuid bits), mtime last.
    private func setOwnerModeTime(_ fd: Int32, _ entry: TreeEntry, _ times: inout [timespec]) throws {
        _ = fchown(fd, entry.uid, entry.gid)
        try check(fchmod(fd, mode_t(entry.mode)))
        try check(futimens(fd, &times))
    }

    // MARK: the hard link index

    private static func groupName(_ group: UInt64) -> String { String(group, radix: 16) }

    /// Links `name` to the group's inode when another name of it was laid
    /// out already (in any directory); false when this is the first.
    private func linkFromIndex(_ group: UInt64, into directory: Int32, name: [UInt8]) throws -> Bool {
        try linkIndexLock.withLock { _ in
            let rc = withCString(name) { linkat(linksFD, LowerSnapshot.groupName(group), directory, $0, 0) }
            if rc == 0 { return true }
            if errno == ENOENT { return false }
            throw Errno.current
        }
    }

    private func addToIndex(_ group: UInt64, directory: Int32, temp: String) throws {
        try linkIndexLock.withLock { _ in
            if linkat(directory, temp, linksFD, LowerSnapshot.groupName(group), 0) != 0 && errno != EEXIST {
                throw Errno.current
            }
        }
    }

    // MARK: hydration

    /// Fills a stub with its bytes from the store and makes it a plain
    /// file. Killed midway, the stub keeps its xattr and stays a stub. Its
    /// mtime is put back: copying up is not a change.
    func hydrate(_ inode: Inode, stub: StubReference) throws {
        let list = try chunkList(of: stub)
        let fd = try check(Glibc.open(inode.procPath, O_WRONLY | O_CLOEXEC))
        defer { close(fd) }
        var before = stat()
        try check(fstat(fd, &before))
        var offset: off_t = 0
        for ref in list {
            let bytes = try chunk(ref)
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
            guard written == bytes.count else { throw written < 0 ? Errno.current : Errno(code: EIO) }
            offset += off_t(bytes.count)
        }
        var times = [before.st_atim, before.st_mtim]
        try check(futimens(fd, &times))
        try Xattr.remove(inode.procPath, LowerSnapshot.stubAttribute)
        counters.filesHydrated.add(1, ordering: .relaxed)
    }
}

extension EntryContent {
    var isDirectory: Bool {
        if case .directory = self { return true }
        return false
    }
}
