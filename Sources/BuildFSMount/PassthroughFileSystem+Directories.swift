import BuildFSCore
import Glibc
import Synchronization

/// An open directory: a DIR stream on the upper directory, and the entry
/// that did not fit in the last reply.
final class DirectoryHandle: @unchecked Sendable {
    struct Pending {
        var name: [CChar]
        var inode: UInt64
        var type: UInt8
        var nextOffset: Int
    }

    struct State {
        var offset = 0
        var pending: Pending?

        /// The reply took `entry` (or skipped it): the next starts after it.
        mutating func advance(past entry: Pending) {
            pending = nil
            offset = entry.nextOffset
        }
    }

    let stream: OpaquePointer
    let state = Mutex(State())

    init(stream: OpaquePointer) { self.stream = stream }

    deinit { closedir(stream) }

    /// The stream's next entry (its name NUL-terminated, for the reply);
    /// nil at the end.
    func readEntry() throws(SystemCallError) -> Pending? {
        errno = 0
        guard let next = Glibc.readdir(stream) else {
            if errno != 0 { throw SystemCallError("readdir") }
            return nil
        }
        return Pending(name: entryName(next, as: CChar.self, terminated: true), inode: UInt64(next.pointee.d_ino),
                       type: next.pointee.d_type, nextOffset: Int(next.pointee.d_off))
    }
}

/// What became of one entry offered to a readdir reply.
private enum Placement {
    case added
    /// Not shown (the link index), or gone since the stream listed it.
    case skipped
    /// No room left: the entry waits for the next reply.
    case full
    case failed(Int32)
}

/// Directories follow files (PassthroughFileSystem+Files): a daemon in
/// no-open mode answers the first OPENDIR with ENOSYS, and from then on the
/// kernel opens and closes directories without asking (no OPENDIR and
/// RELEASEDIR round trips per listing) and caches their listings, as the
/// daemon would ask anyway (see `opendir`). READDIR then comes without a
/// handle: each request reads from a stream opened at its offset, which
/// is the upper directory's own cookie (d_off), valid across opens.
extension PassthroughFileSystem {
    func opendir(_ request: Request, _ ino: UInt64) {
        if servesDirectoriesWithoutOpens {
            request.reply(error: ENOSYS)
            return
        }
        replying(request) {
            let directory = try openDirectory(try table.inode(ino))
            // Listings stay valid: the kernel drops them itself when it
            // changes the directory through us, and nobody else does.
            request.reply(open: OpenFile(handle: UInt64(UInt(bitPattern: Unmanaged.passRetained(directory).toOpaque())),
                                         keepCache: true, cacheListing: true))
        }
    }

    /// A stream on the upper directory, expanded first if it comes from
    /// the snapshot.
    private func openDirectory(_ inode: Inode) throws -> DirectoryHandle {
        try snapshot?.ensureExpanded(inode)
        let fd = try sys("openat") { openat(inode.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard let stream = fdopendir(fd) else {
            let error = SystemCallError("fdopendir")
            close(fd)
            throw error
        }
        return DirectoryHandle(stream: stream)
    }

    /// The open directory of a request: its handle, or in no-open mode
    /// (fh 0) a stream opened for this request alone.
    private func directory(_ inode: Inode, handle: UInt64) throws -> DirectoryHandle {
        guard let handle = UnsafeRawPointer(bitPattern: UInt(handle)) else {
            return try openDirectory(inode)
        }
        return Unmanaged<DirectoryHandle>.fromOpaque(handle).takeUnretainedValue()
    }

    func releasedir(_ request: Request, handle: UInt64) {
        if let handle = UnsafeRawPointer(bitPattern: UInt(handle)) {
            Unmanaged<DirectoryHandle>.fromOpaque(handle).release()
        }
        request.replySuccess()
    }

    func fsyncdir(_ request: Request, _ ino: UInt64, dataOnly: Bool, handle: UInt64) {
        replying(request) {
            let directory = try directory(try table.inode(ino), handle: handle)
            try withExtendedLifetime(directory) { // its stream owns the descriptor
                let fd = dirfd(directory.stream)
                try sys("fsync") { dataOnly ? fdatasync(fd) : Glibc.fsync(fd) }
            }
            request.replySuccess()
        }
    }

    /// readdir and readdirplus. With `plus`, each entry but "." and ".."
    /// comes with its attributes and counts as a lookup, which spares the
    /// kernel a lookup per name when a tool stats what it lists.
    func readdir(_ request: Request, _ ino: UInt64, _ size: Int, _ offset: off_t, handle: UInt64, plus: Bool) {
        let parent: Inode
        let directory: DirectoryHandle
        do {
            parent = try table.inode(ino)
            directory = try self.directory(parent, handle: handle)
        } catch {
            replyError(request, error)
            return
        }
        var listing = DirectoryListing(capacity: size)
        var fillable: [UInt64] = []
        var failure: Int32 = 0
        directory.state.withLock { state in
            if offset != state.offset {
                seekdir(directory.stream, Int(offset))
                state.pending = nil
                state.offset = Int(offset)
            }
            while true {
                let entry: DirectoryHandle.Pending
                if let pending = state.pending {
                    entry = pending
                } else {
                    do throws(SystemCallError) {
                        guard let next = try directory.readEntry() else { return }
                        entry = next
                    } catch {
                        failure = error.code
                        return
                    }
                }
                switch place(entry, of: parent, into: &listing, plus: plus, fillable: &fillable) {
                case .added, .skipped:
                    state.advance(past: entry)
                case .full:
                    state.pending = entry
                    return
                case let .failed(code):
                    failure = code
                    return
                }
            }
        }
        // An error after some entries still returns those entries.
        if failure != 0 && listing.used == 0 {
            request.reply(error: failure)
        } else {
            listing.send(to: request)
        }
        filler?.listed(fillable, in: ino)
    }

    /// Adds `entry` to the listing if it fits. With `plus`, an entry but
    /// "." and ".." is looked up (counted as a kernel lookup only if it
    /// fits).
    private func place(_ entry: DirectoryHandle.Pending, of parent: Inode, into listing: inout DirectoryListing,
                       plus: Bool, fillable: inout [UInt64]) -> Placement {
        entry.name.withUnsafeBufferPointer { nameBuffer in
            let name = nameBuffer.baseAddress!
            if let snapshot, snapshot.isInternal(parent, name) { return .skipped }
            guard plus else {
                return listing.add(name, inode: entry.inode, type: entry.type, nextOffset: entry.nextOffset) ? .added : .full
            }
            let isDot = entry.name == [0x2E, 0] || entry.name == [0x2E, 0x2E, 0]
            let found: Entry
            if isDot {
                var st = stat()
                st.st_ino = ino_t(entry.inode)
                st.st_mode = mode_t(entry.type) << 12
                found = Entry(number: 0, attributes: st, timeout: 0)
            } else {
                do {
                    let (inode, st) = try table.lookUp(name, in: parent)
                    found = self.entry(inode, st)
                } catch let error as SystemCallError {
                    return error.code == ENOENT ? .skipped : .failed(error.code)
                } catch {
                    return .failed(EIO)
                }
            }
            guard listing.add(name, entry: found, nextOffset: entry.nextOffset) else {
                if !isDot { table.forget(found.number, count: 1) } // the kernel will not see it now
                return .full
            }
            if found.attributes.st_mode & S_IFMT == S_IFREG,
               (1...Int(PageCacheFiller.fileLimit)).contains(found.attributes.st_size) {
                fillable.append(found.number)
            }
            return .added
        }
    }
}
