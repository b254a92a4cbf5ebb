import BuildFSCore
import CLinuxCalls
import Glibc
import Synchronization

extension LowerSnapshot {
    /// Lays the entries of `tree` into the upper directory `directory`
    /// (an O_PATH descriptor) and marks it expanded.
    /// A directory still marked pending holds only what an expansion killed
    /// midway made (nothing else can reach it before the mark is gone), so a
    /// new expansion first clears it. The mtime is put back: expanding is
    /// not a change.
    func expand(_ directory: Int32, tree treeID: ObjectID) throws {
        let tree = try self.tree(treeID)
        var before = stat()
        try check(fstatat(directory, "", &before, BUILDFS_AT_EMPTY_PATH))
        let listing = try check(openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
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
            forgetLaidOut(noted)
            throw error
        }
        var times = [before.st_atim, before.st_mtim]
        try check(utimensat(directory, "", &times, BUILDFS_AT_EMPTY_PATH))
        try Xattr.remove("/proc/self/fd/\(directory)", LowerSnapshot.treeAttribute)
        counters.directoriesExpanded.add(1, ordering: .relaxed)
    }

    /// Expands every pending subdirectory of `directory` (their own
    /// subdirectories stay pending).
    func expandSubdirectories(of directory: Int32) throws {
        let listing = try check(openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        guard let stream = fdopendir(listing) else {
            close(listing)
            throw Errno.current
        }
        defer { closedir(stream) }
        while let entry = Glibc.readdir(stream) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                return Array(bytes.prefix(upTo: bytes.firstIndex(of: 0) ?? bytes.count))
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            let child = try withCString(name) { try check(openat(directory, $0, 0o10000000 | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) }
            defer { close(child) }
            if let tree = Xattr.get("/proc/self/fd/\(child)", LowerSnapshot.treeAttribute).flatMap(UpperLayout.decodeTreeID) {
                try expand(child, tree: tree)
            }
        }
    }

    /// Creates one entry with its metadata. Few calls per file: the mode is
    /// given at creation (the daemon's umask is 0), owner and mode are
    /// changed only when they differ from the daemon's defaults. Returns the
    /// key of a stub it noted as laid out (see `laidOut`).
    private func place(_ entry: TreeEntry, from treeID: ObjectID, in directory: Int32,
                       inheritsGroup: Bool) throws -> InodeKey? {
        var times = [timespec(tv_sec: Int(entry.mtime.seconds), tv_nsec: Int(entry.mtime.nanoseconds)),
                     timespec(tv_sec: Int(entry.mtime.seconds), tv_nsec: Int(entry.mtime.nanoseconds))]
        return try withCString(entry.name) { name -> InodeKey? in
            switch entry.content {
            case let .directory(subtree):
                try check(mkdirat(directory, name, 0o700))
                let fd = try check(openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC))
                defer { close(fd) }
                try Xattr.set(fd, LowerSnapshot.treeAttribute, [1] + subtree.bytes)
                try setOwnerMode(fd, entry, createdWith: 0o700, always: inheritsGroup)
                try check(futimens(fd, &times))
                return nil
            case let .symlink(target):
                _ = try withCString(target) { try check(symlinkat($0, directory, name)) }
                if entry.uid != 0 || entry.gid != 0 || inheritsGroup {
                    _ = fchownat(directory, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW)
                }
                try check(utimensat(directory, name, &times, AT_SYMLINK_NOFOLLOW))
                return nil
            case let .file(size, _, group):
                if group != 0, try linkFromIndex(group, into: directory, name: name) { return nil }
                let mode = mode_t(entry.mode)
                let fd = try check(openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode))
                defer { close(fd) }
                if size > 0 { try check(ftruncate(fd, off_t(size))) }
                let stub = StubReference(tree: treeID, name: entry.name)
                try Xattr.set(fd, LowerSnapshot.stubAttribute, stub.encode())
                if group != 0 { try Xattr.set(fd, LowerSnapshot.indexedAttribute, [1]) }
                try setOwnerMode(fd, entry, createdWith: mode, always: inheritsGroup)
                try check(futimens(fd, &times))
                if group != 0 { try addToIndex(group, directory: directory, name: name) }
                return noteLaidOut(fd, stub: stub, indexed: group != 0)
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
        if needsMode { try check(fchmod(fd, mode_t(entry.mode))) }
    }

    // MARK: the hard link index

    private static func groupName(_ group: UInt64) -> String { String(group, radix: 16) }

    /// Links `name` to the group's inode when another name of it was laid
    /// out already (in any directory); false when this is the first.
    private func linkFromIndex(_ group: UInt64, into directory: Int32, name: UnsafePointer<CChar>) throws -> Bool {
        try linkIndexLock.withLock { _ in
            let rc = linkat(linksFD, LowerSnapshot.groupName(group), directory, name, 0)
            if rc == 0 { return true }
            if errno == ENOENT { return false }
            throw Errno.current
        }
    }

    private func addToIndex(_ group: UInt64, directory: Int32, name: UnsafePointer<CChar>) throws {
        try linkIndexLock.withLock { _ in
            if linkat(directory, name, linksFD, LowerSnapshot.groupName(group), 0) != 0 && errno != EEXIST {
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
        store.prefetch(list.map(\.id))
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

