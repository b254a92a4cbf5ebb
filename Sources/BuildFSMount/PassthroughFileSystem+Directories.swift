import BuildFSCore
import CFuse3
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
    case added(bytes: Int)
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
    func opendir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if servesWithoutOpens {
            fuse_reply_err(req, ENOSYS)
            return
        }
        replying(req) {
            let directory = try openDirectory(try table.inode(ino))
            fi.pointee.fh = UInt64(UInt(bitPattern: Unmanaged.passRetained(directory).toOpaque()))
            // Listings stay valid: the kernel drops them itself when it
            // changes the directory through us, and nobody else does.
            fi.pointee.cache_readdir = 1
            fi.pointee.keep_cache = 1
            fuse_reply_open(req, fi)
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
    private func directory(_ inode: Inode, _ fi: UnsafeMutablePointer<fuse_file_info>) throws -> DirectoryHandle {
        guard let handle = UnsafeRawPointer(bitPattern: UInt(fi.pointee.fh)) else {
            return try openDirectory(inode)
        }
        return Unmanaged<DirectoryHandle>.fromOpaque(handle).takeUnretainedValue()
    }

    func releasedir(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if let handle = UnsafeRawPointer(bitPattern: UInt(fi.pointee.fh)) {
            Unmanaged<DirectoryHandle>.fromOpaque(handle).release()
        }
        fuse_reply_err(req, 0)
    }

    func fsyncdir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ dataOnly: Bool, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let directory = try directory(try table.inode(ino), fi)
            try withExtendedLifetime(directory) { // its stream owns the descriptor
                let fd = dirfd(directory.stream)
                try sys("fsync") { dataOnly ? fdatasync(fd) : Glibc.fsync(fd) }
            }
            fuse_reply_err(req, 0)
        }
    }

    /// readdir and readdirplus. With `plus`, each entry but "." and ".."
    /// comes with its attributes and counts as a lookup, which spares the
    /// kernel a lookup per name when a tool stats what it lists.
    func readdir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                 _ fi: UnsafeMutablePointer<fuse_file_info>, plus: Bool) {
        let parent: Inode
        let directory: DirectoryHandle
        do {
            parent = try table.inode(ino)
            directory = try self.directory(parent, fi)
        } catch {
            replyError(req, error)
            return
        }
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
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
                let placement = buffer.withUnsafeMutableBufferPointer { out in
                    place(entry, of: parent, into: out.baseAddress! + used, room: size - used, req, plus: plus)
                }
                switch placement {
                case let .added(bytes):
                    used += bytes
                    state.advance(past: entry)
                case .skipped:
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
        if failure != 0 && used == 0 {
            fuse_reply_err(req, failure)
        } else {
            fuse_reply_buf(req, buffer, used)
        }
    }

    /// Adds `entry` to a reply at `out` if it fits in `room`. With `plus`,
    /// an entry but "." and ".." is looked up (counted as a kernel lookup
    /// only if it fits).
    private func place(_ entry: DirectoryHandle.Pending, of parent: Inode, into out: UnsafeMutablePointer<CChar>,
                       room: Int, _ req: fuse_req_t, plus: Bool) -> Placement {
        if let snapshot, entry.name.withUnsafeBufferPointer({ snapshot.isInternal(parent, $0.baseAddress!) }) {
            return .skipped
        }
        guard plus else {
            var st = stat()
            st.st_ino = ino_t(entry.inode)
            st.st_mode = mode_t(entry.type) << 12
            let added = fuse_add_direntry(req, out, room, entry.name, &st, off_t(entry.nextOffset))
            return added > room ? .full : .added(bytes: added)
        }
        var param = fuse_entry_param()
        let isDot = entry.name == [0x2E, 0] || entry.name == [0x2E, 0x2E, 0]
        if isDot {
            param.attr.st_ino = ino_t(entry.inode)
            param.attr.st_mode = mode_t(entry.type) << 12
        } else {
            do {
                let (inode, st) = try entry.name.withUnsafeBufferPointer { try table.lookUp($0.baseAddress!, in: parent) }
                param = entryParam(inode, st)
            } catch let error as SystemCallError {
                return error.code == ENOENT ? .skipped : .failed(error.code)
            } catch {
                return .failed(EIO)
            }
        }
        let added = fuse_add_direntry_plus(req, out, room, entry.name, &param, off_t(entry.nextOffset))
        guard added <= room else {
            if !isDot { table.forget(param.ino, count: 1) } // the kernel will not see it now
            return .full
        }
        return .added(bytes: added)
    }
}
