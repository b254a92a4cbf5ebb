import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc

/// File contents. A root daemon serves them without open files: it answers
/// the kernel's first OPEN with ENOSYS, and from then on the kernel opens
/// and closes files on its own (FUSE "no open" mode) and sends reads and
/// writes without a handle (fh 0). Every open() and close() is then free of
/// round trips (a warm walk that reads every file made two per file, more
/// than native needs to read the file), and pages are kept across opens,
/// which is what the daemon would ask for anyway (see `setCaching`). Each
/// read or write reopens the upper file through its inode's O_PATH
/// descriptor for that one request. In this mode the kernel sends no
/// RELEASE, not even for create(), so create() keeps no descriptor either.
///
/// A daemon without CAP_DAC_OVERRIDE (not root, or root with it dropped)
/// could not reopen a file that is no longer writable by mode (`cp` of a
/// read-only file writes into the copy it made read-only): it serves real
/// opens, with the upper descriptor as the handle (none for a stub opened
/// read-only: it is read from the store by inode).
extension PassthroughFileSystem {
    /// The flags to open the upper file with. The kernel sends every write
    /// with its offset (the end of the file for O_APPEND): an O_APPEND upper
    /// descriptor would move that offset again, so it is dropped. O_NOFOLLOW
    /// would refuse the /proc path the file is reopened through.
    func openFlags(_ requested: Int32) -> Int32 {
        requested & ~(O_NOFOLLOW | O_APPEND) | O_CLOEXEC
    }

    func open(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if servesWithoutOpens {
            fuse_reply_err(req, ENOSYS)
            return
        }
        replying(req) {
            let inode = try table.inode(ino)
            if fi.pointee.flags & O_ACCMODE == O_RDONLY, try snapshot?.stubContent(inode) != nil {
                RegularFileHandle.set(fi, descriptor: nil)
            } else {
                if fi.pointee.flags & O_ACCMODE != O_RDONLY { try snapshot?.copyUpIfStub(inode) }
                RegularFileHandle.set(fi, descriptor: try sys("open") { Glibc.open(inode.procPath, openFlags(fi.pointee.flags)) })
            }
            setCaching(fi)
            fuse_reply_open(req, fi)
        }
    }

    /// How the kernel caches an open file (in no-open mode, one made by
    /// create()). Pages stay valid across opens (keep_cache): nobody else
    /// writes the file. A write-only descriptor skips the kernel's page
    /// cache (direct_io): its writes go to the daemon straight from the
    /// writer's buffer instead of first being copied into pages that nobody
    /// reads through it (which doubled 1 GiB sequential writes). Safe: the
    /// kernel drops cached pages of the range such a write covers, and a
    /// write-only descriptor cannot be mmapped, so linkers writing through
    /// mmap keep the page cache.
    ///
    /// close() skips the FLUSH round trip (noflush) when it has nothing to
    /// report: a read-only descriptor, or any descriptor on an upper file
    /// system whose close never fails (UpperFileSystemType). Locks need no
    /// FLUSH either: the kernel keeps them itself.
    func setCaching(_ fi: UnsafeMutablePointer<fuse_file_info>) {
        fi.pointee.keep_cache = 1
        if fi.pointee.flags & O_ACCMODE == O_WRONLY { fi.pointee.direct_io = 1 }
        if fi.pointee.flags & O_ACCMODE == O_RDONLY || upperCloseReportsNothing { fi.pointee.noflush = 1 }
    }

    /// Runs `body` on the request's descriptor if it has one, else on the
    /// upper file reopened with `flags` for this request.
    @discardableResult
    func withDescriptor<R>(_ inode: Inode, _ fi: UnsafeMutablePointer<fuse_file_info>, _ flags: Int32,
                           _ body: (Int32) throws -> R) throws -> R {
        if let fd = RegularFileHandle.descriptor(fi) { return try body(fd) }
        let fd = try sys("open") { Glibc.open(inode.procPath, flags | O_CLOEXEC) }
        defer { close(fd) }
        return try body(fd)
    }

    /// A stub is read from the store (a damaged or missing chunk is an I/O
    /// error for the reader and a named error in the log: never wrong
    /// bytes); anything else is spliced from the upper file, or copied when
    /// the READ is larger than `largestSplicedRead`. fuse_reply_data
    /// answers a failed read with the error itself: replying again would
    /// free the request twice.
    func read(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
              _ fi: UnsafeMutablePointer<fuse_file_info>) {
        let inode: Inode
        let stub: StubContent?
        do {
            inode = try table.inode(ino)
            stub = try snapshot?.stubContent(inode)
        } catch {
            replyError(req, error)
            return
        }
        if let stub, let snapshot {
            do {
                reply(req, with: try stub.read(snapshot.layer, size: size, offset: UInt64(offset)))
            } catch {
                daemonLog("read of snapshot '\(snapshot.layer.key)' failed: \(error)")
                fuse_reply_err(req, EIO)
            }
            return
        }
        do {
            try withDescriptor(inode, fi, O_RDONLY) { fd in
                if size <= Self.largestSplicedRead {
                    _ = buildfs_reply_fd_data(req, fd, offset, size)
                    return
                }
                // Until full or the end: a short reply reads as the file's end.
                let bytes = try [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                    count = 0
                    while count < size {
                        let n = try sys("pread") { pread(fd, buffer.baseAddress! + count, size - count, offset + off_t(count)) }
                        if n == 0 { break }
                        count += n
                    }
                }
                fuse_reply_buf(req, bytes, bytes.count)
            }
        } catch {
            replyError(req, error)
        }
    }

    /// Splicing a READ needs a pipe as large as the reply, and a pipe grows
    /// to at most 1 MiB (fs.pipe-max-size) while the kernel reads ahead in
    /// READs of up to 1 MiB (KernelReadAhead): libfuse then falls back to a
    /// slower copy of its own. Larger READs are copied here; measured with
    /// 1 MiB READs, a 256 MiB file read after it was written took 0.19 s
    /// instead of 0.31 s (0.14 s with the kernel's 128 KiB READs, spliced).
    static let largestSplicedRead = 256 << 10

    /// Replies with the pieces' bytes in place: each chunk's storage is
    /// pinned by one nested closure while the reply is written.
    private func reply(_ req: fuse_req_t, with pieces: [StubContent.Piece]) {
        var vectors: [iovec] = []
        vectors.reserveCapacity(pieces.count)
        func pin(_ next: Int) {
            guard next < pieces.count else {
                fuse_reply_iov(req, vectors, Int32(vectors.count))
                return
            }
            pieces[next].chunk.withUnsafeBytes { chunk in
                let range = pieces[next].range
                if !range.isEmpty, let base = chunk.baseAddress {
                    vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base + range.lowerBound),
                                         iov_len: range.count))
                }
                pin(next + 1)
            }
        }
        pin(0)
    }

    /// The first write to a stub copies it up.
    func writeBuffer(_ req: fuse_req_t, _ ino: fuse_ino_t, _ buffers: UnsafeMutablePointer<fuse_bufvec>,
                     _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let inode = try table.inode(ino)
            try snapshot?.copyUpIfStub(inode)
            let written = try withDescriptor(inode, fi, O_WRONLY) { buildfs_write_buf_to_fd(buffers, $0, offset) }
            if written < 0 { throw SystemCallError("write", code: Int32(-written)) }
            fuse_reply_write(req, Int(written))
        }
    }

    /// Called at close. On an upper file system whose close never fails,
    /// ENOSYS tells the kernel to stop sending FLUSH for the whole mount.
    /// Elsewhere (NFS-like upper directories) close-time errors of the
    /// upper file are reported: an open descriptor is checked without
    /// closing it; a reopened one was closed, and checked, by the request
    /// that wrote through it.
    func flush(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if upperCloseReportsNothing {
            fuse_reply_err(req, ENOSYS)
            return
        }
        replying(req) {
            if let fd = RegularFileHandle.descriptor(fi) {
                let copy = try sys("dup") { dup(fd) }
                if close(copy) != 0 { throw SystemCallError("close") }
            }
            fuse_reply_err(req, 0)
        }
    }

    func release(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if let fd = RegularFileHandle.descriptor(fi) { close(fd) }
        fuse_reply_err(req, 0)
    }

    /// A stub has nothing written to sync.
    func fsync(_ req: fuse_req_t, _ ino: fuse_ino_t, _ dataOnly: Bool, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let inode = try table.inode(ino)
            if snapshot?.layerState(inode)?.stub == nil {
                try withDescriptor(inode, fi, O_RDONLY) { fd in try sys("fsync") { dataOnly ? fdatasync(fd) : Glibc.fsync(fd) } }
            }
            fuse_reply_err(req, 0)
        }
    }

    /// Allocating (or punching) changes content: a stub is copied up first.
    func fallocate(_ req: fuse_req_t, _ ino: fuse_ino_t, _ mode: Int32, _ offset: off_t, _ length: off_t,
                   _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let inode = try table.inode(ino)
            try snapshot?.copyUpIfStub(inode)
            try withDescriptor(inode, fi, O_WRONLY) { fd in try sys("fallocate") { buildfs_fallocate(fd, mode, offset, length) } }
            fuse_reply_err(req, 0)
        }
    }
}

/// A regular file's FUSE handle (`fh`): its upper descriptor plus one, so
/// that 0 means "no descriptor" (a stub read from the store, or no-open
/// mode) whatever descriptors the process has open. Directories' handles
/// are DirectoryHandle objects instead (PassthroughFileSystem+Directories).
enum RegularFileHandle {
    static func set(_ fi: UnsafeMutablePointer<fuse_file_info>, descriptor: Int32?) {
        fi.pointee.fh = descriptor.map { UInt64($0) + 1 } ?? 0
    }

    static func descriptor(_ fi: UnsafeMutablePointer<fuse_file_info>) -> Int32? {
        fi.pointee.fh == 0 ? nil : Int32(truncatingIfNeeded: fi.pointee.fh - 1)
    }
}
