import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc

/// Open files: the file handle (`fi.fh`) is a real descriptor on the upper file.
extension PassthroughFileSystem {
    /// The flags to open the upper file with. The kernel sends every write
    /// with its offset (the end of the file for O_APPEND): an O_APPEND upper
    /// descriptor would move that offset again, so it is dropped. O_NOFOLLOW
    /// would refuse the /proc path the file is reopened through.
    func openFlags(_ requested: Int32) -> Int32 {
        requested & ~(O_NOFOLLOW | O_APPEND) | O_CLOEXEC
    }

    func open(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let inode = table.inode(ino)
            if let lower, let stub = lowerState(inode)?.stub {
                if fi.pointee.flags & O_ACCMODE == O_RDONLY && fi.pointee.flags & O_TRUNC == 0 {
                    // Read-only: served from the store, nothing copied.
                    let chunks: [ChunkRef]
                    do { chunks = try lower.chunkList(of: stub) } catch {
                        log("opening a file of snapshot '\(lower.key)': \(error)")
                        throw Errno(code: EIO)
                    }
                    fi.pointee.fh = StubReadHandle(inode: inode, chunks: chunks).fileHandle
                    fi.pointee.keep_cache = 1
                    fi.pointee.noflush = 1 // nothing to flush: spare close() a round trip
                    fuse_reply_open(req, fi)
                    return
                }
                try hydrateIfStub(inode)
            }
            let fd = try check(Glibc.open(inode.procPath, openFlags(fi.pointee.flags)))
            fi.pointee.fh = UInt64(fd)
            setCaching(fi)
            fuse_reply_open(req, fi)
        }
    }

    /// How the kernel caches a file opened on the upper file. Pages stay
    /// valid across opens (keep_cache): nobody else writes the file. A
    /// write-only descriptor skips the kernel's page cache (direct_io): its
    /// writes go to the daemon straight from the writer's buffer instead of
    /// first being copied into pages that nobody reads through it (which
    /// doubled 1 GiB sequential writes). Safe: the kernel drops cached pages
    /// of the range such a write covers, and a write-only descriptor cannot
    /// be mmapped, so linkers writing through mmap keep the page cache.
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

    /// Spliced from the upper file. fuse_reply_data answers a failed read
    /// with the error itself: replying again would free the request twice.
    func read(_ req: fuse_req_t, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if let handle = StubReadHandle.from(fi.pointee.fh) {
            readStub(req, handle, size, offset)
            return
        }
        _ = buildfs_reply_fd_data(req, Int32(truncatingIfNeeded: fi.pointee.fh), offset, size)
    }

    /// A damaged or missing chunk is an I/O error for the reader and a named
    /// error in the log: never wrong bytes.
    private func readStub(_ req: fuse_req_t, _ handle: StubReadHandle, _ size: Int, _ offset: off_t) {
        guard let lower else { return }
        if lowerState(handle.inode)?.stub == nil {
            // Hydrated meanwhile through another descriptor: the upper file is current.
            replying(req) {
                let fd = try check(Glibc.open(handle.inode.procPath, O_RDONLY | O_CLOEXEC))
                defer { close(fd) }
                var buffer = [UInt8](repeating: 0, count: size)
                let n = try check(pread(fd, &buffer, size, offset))
                fuse_reply_buf(req, buffer, n)
            }
            return
        }
        do {
            let bytes = try handle.read(lower, size: size, offset: UInt64(offset))
            fuse_reply_buf(req, bytes, bytes.count)
        } catch let error as BuildFSError {
            log("read of snapshot '\(lower.key)' failed: \(error.description)")
            fuse_reply_err(req, EIO)
        } catch {
            fuse_reply_err(req, EIO)
        }
    }

    func writeBuffer(_ req: fuse_req_t, _ buffers: UnsafeMutablePointer<fuse_bufvec>, _ offset: off_t,
                     _ fi: UnsafeMutablePointer<fuse_file_info>) {
        let written = buildfs_write_buf_to_fd(buffers, Int32(truncatingIfNeeded: fi.pointee.fh), offset)
        if written < 0 {
            fuse_reply_err(req, Int32(-written))
        } else {
            fuse_reply_write(req, Int(written))
        }
    }

    /// Called at every close of a descriptor: report close-time errors of
    /// the upper file (as NFS-like file systems do) without closing ours.
    func flush(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if StubReadHandle.from(fi.pointee.fh) != nil {
            fuse_reply_err(req, 0)
            return
        }
        replying(req) {
            try check(close(try check(dup(Int32(truncatingIfNeeded: fi.pointee.fh)))))
            fuse_reply_err(req, 0)
        }
    }

    func release(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if StubReadHandle.from(fi.pointee.fh) != nil {
            StubReadHandle.release(fi.pointee.fh)
        } else {
            close(Int32(truncatingIfNeeded: fi.pointee.fh))
        }
        fuse_reply_err(req, 0)
    }

    func fsync(_ req: fuse_req_t, _ dataOnly: Bool, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if StubReadHandle.from(fi.pointee.fh) != nil {
            fuse_reply_err(req, 0) // nothing was written through it
            return
        }
        replying(req) {
            let fd = Int32(truncatingIfNeeded: fi.pointee.fh)
            try check(dataOnly ? fdatasync(fd) : Glibc.fsync(fd))
            fuse_reply_err(req, 0)
        }
    }

    func fallocate(_ req: fuse_req_t, _ mode: Int32, _ offset: off_t, _ length: off_t,
                   _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            if StubReadHandle.from(fi.pointee.fh) != nil { throw Errno(code: EBADF) }
            try check(buildfs_fallocate(Int32(truncatingIfNeeded: fi.pointee.fh), mode, offset, length))
            fuse_reply_err(req, 0)
        }
    }
}
