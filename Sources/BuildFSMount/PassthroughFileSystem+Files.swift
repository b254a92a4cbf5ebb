import CFuse3
import CLinuxCalls
import Glibc

/// Open files: the file handle (`fi.fh`) is a real descriptor on the upper file.
extension PassthroughFileSystem {
    /// The flags to open the upper file with. With the writeback cache the
    /// kernel writes whole pages at offsets of its choosing, also for files
    /// opened write-only or for append: so write-only becomes read-write and
    /// O_APPEND is dropped (else `echo x >> f` was seen to duplicate data).
    func openFlags(_ requested: Int32) -> Int32 {
        var flags = requested & ~(O_NOFOLLOW | O_APPEND)
        if flags & O_ACCMODE == O_WRONLY { flags = (flags & ~O_ACCMODE) | O_RDWR }
        return flags | O_CLOEXEC
    }

    func open(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let fd = try check(Glibc.open(table.inode(ino).procPath, openFlags(fi.pointee.flags)))
            fi.pointee.fh = UInt64(fd)
            // Pages stay valid across opens: nobody else writes the file.
            fi.pointee.keep_cache = 1
            fuse_reply_open(req, fi)
        }
    }

    /// Spliced from the upper file. fuse_reply_data answers a failed read
    /// with the error itself: replying again would free the request twice.
    func read(_ req: fuse_req_t, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        _ = buildfs_reply_fd_data(req, Int32(truncatingIfNeeded: fi.pointee.fh), offset, size)
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
        replying(req) {
            try check(close(try check(dup(Int32(truncatingIfNeeded: fi.pointee.fh)))))
            fuse_reply_err(req, 0)
        }
    }

    func release(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        close(Int32(truncatingIfNeeded: fi.pointee.fh))
        fuse_reply_err(req, 0)
    }

    func fsync(_ req: fuse_req_t, _ dataOnly: Bool, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            let fd = Int32(truncatingIfNeeded: fi.pointee.fh)
            try check(dataOnly ? fdatasync(fd) : Glibc.fsync(fd))
            fuse_reply_err(req, 0)
        }
    }

    func fallocate(_ req: fuse_req_t, _ mode: Int32, _ offset: off_t, _ length: off_t,
                   _ fi: UnsafeMutablePointer<fuse_file_info>) {
        replying(req) {
            try check(buildfs_fallocate(Int32(truncatingIfNeeded: fi.pointee.fh), mode, offset, length))
            fuse_reply_err(req, 0)
        }
    }
}
