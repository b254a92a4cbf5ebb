import CFuse3
import Glibc

/// The table of C callbacks libfuse calls on its worker threads. Each one
/// only finds the file system (the session's userdata) and forwards; the
/// work and the reply happen in PassthroughFileSystem. Callbacks must not
/// capture anything (they are C function pointers).
enum FuseOperations {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let userdata, let conn else { return }
            Unmanaged<PassthroughFileSystem>.fromOpaque(userdata).takeUnretainedValue().negotiate(conn)
        }
        ops.lookup = { req, parent, name in serve(req) { $0.lookup(Request(req!), parent, name!) } }
        ops.forget = { req, ino, count in
            serve(req) { $0.forget(ino, count) }
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            serve(req) { fs in
                for i in 0..<count { fs.forget(forgets![i].ino, forgets![i].nlookup) }
            }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, _ in serve(req) { $0.getattr(Request(req!), ino) } }
        ops.setattr = { req, ino, attr, toSet, fi in
            serve(req) { $0.setattr(Request(req!), ino, attr!.pointee, toSet, handle: RegularFileHandle(fi?.pointee.fh ?? 0)) }
        }
        ops.readlink = { req, ino in serve(req) { $0.readlink(Request(req!), ino) } }
        ops.mknod = { req, parent, name, mode, rdev in
            serve(req) { $0.mknod(Request(req!), parent, name!, mode, rdev, umask: callerUmask(req)) }
        }
        ops.mkdir = { req, parent, name, mode in
            serve(req) { $0.mkdir(Request(req!), parent, name!, mode, umask: callerUmask(req)) }
        }
        ops.unlink = { req, parent, name in serve(req) { $0.unlink(Request(req!), parent, name!) } }
        ops.rmdir = { req, parent, name in serve(req) { $0.rmdir(Request(req!), parent, name!) } }
        ops.symlink = { req, target, parent, name in serve(req) { $0.symlink(Request(req!), target!, parent, name!) } }
        ops.rename = { req, parent, name, newParent, newName, flags in
            serve(req) { $0.rename(Request(req!), parent, name!, newParent, newName!, flags) }
        }
        ops.link = { req, ino, newParent, newName in serve(req) { $0.link(Request(req!), ino, newParent, newName!) } }
        ops.open = { req, ino, fi in serve(req) { $0.open(Request(req!), ino, flags: fi!.pointee.flags) } }
        ops.read = { req, ino, size, offset, fi in
            serve(req) { $0.read(Request(req!), ino, size, offset, handle: RegularFileHandle(fi!.pointee.fh)) }
        }
        ops.write = { req, ino, data, size, offset, fi in
            serve(req) {
                $0.write(Request(req!), ino, UnsafeRawBufferPointer(start: data, count: size), offset,
                         handle: RegularFileHandle(fi!.pointee.fh))
            }
        }
        ops.flush = { req, _, fi in serve(req) { $0.flush(Request(req!), handle: RegularFileHandle(fi!.pointee.fh)) } }
        ops.release = { req, _, fi in serve(req) { $0.release(Request(req!), handle: RegularFileHandle(fi!.pointee.fh)) } }
        ops.fsync = { req, ino, dataOnly, fi in
            serve(req) { $0.fsync(Request(req!), ino, dataOnly: dataOnly != 0, handle: RegularFileHandle(fi!.pointee.fh)) }
        }
        ops.opendir = { req, ino, _ in serve(req) { $0.opendir(Request(req!), ino) } }
        ops.readdir = { req, ino, size, offset, fi in
            serve(req) { $0.readdir(Request(req!), ino, size, offset, handle: fi!.pointee.fh, plus: false) }
        }
        ops.readdirplus = { req, ino, size, offset, fi in
            serve(req) { $0.readdir(Request(req!), ino, size, offset, handle: fi!.pointee.fh, plus: true) }
        }
        ops.releasedir = { req, _, fi in serve(req) { $0.releasedir(Request(req!), handle: fi!.pointee.fh) } }
        ops.fsyncdir = { req, ino, dataOnly, fi in
            serve(req) { $0.fsyncdir(Request(req!), ino, dataOnly: dataOnly != 0, handle: fi!.pointee.fh) }
        }
        ops.statfs = { req, ino in serve(req) { $0.statfs(Request(req!), ino) } }
        ops.setxattr = { req, ino, name, value, size, flags in
            serve(req) { $0.setxattr(Request(req!), ino, name!, value, size, flags) }
        }
        ops.getxattr = { req, ino, name, size in serve(req) { $0.getxattr(Request(req!), ino, name!, size) } }
        ops.listxattr = { req, ino, size in serve(req) { $0.listxattr(Request(req!), ino, size) } }
        ops.removexattr = { req, ino, name in serve(req) { $0.removexattr(Request(req!), ino, name!) } }
        ops.create = { req, parent, name, mode, fi in
            serve(req) { $0.create(Request(req!), parent, name!, mode, flags: fi!.pointee.flags, umask: callerUmask(req)) }
        }
        ops.fallocate = { req, ino, mode, offset, length, fi in
            serve(req) { $0.fallocate(Request(req!), ino, mode, offset, length, handle: RegularFileHandle(fi!.pointee.fh)) }
        }
        // No getlk/setlk/flock: without them the kernel keeps POSIX and
        // flock locks itself, which is right while the mount is the only
        // way to the files.
        return ops
    }
}

/// Runs a request on the file system it is for, inside the descriptor
/// cache's gate. Top-level: a static method would make the callbacks
/// capture their type, which a C function pointer cannot.
@inline(__always)
private func serve(_ req: fuse_req_t?, _ body: (PassthroughFileSystem) -> Void) {
    let fileSystem = Unmanaged<PassthroughFileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    fileSystem.table.cache.serving(fileSystem.table) { body(fileSystem) }
}

/// The umask of the caller creating a file (the kernel leaves it to the
/// daemon: FUSE_CAP_DONT_MASK).
private func callerUmask(_ req: fuse_req_t?) -> mode_t { fuse_req_ctx(req)?.pointee.umask ?? 0 }

extension PassthroughFileSystem {
    /// What the daemon asks of the kernel at mount time.
    func negotiate(_ conn: UnsafeMutablePointer<fuse_conn_info>) {
        func want(_ capability: Int32) {
            if conn.pointee.capable & UInt32(capability) != 0 { conn.pointee.want |= UInt32(capability) }
        }
        // No writeback cache: with it the kernel owns the mtimes of files
        // written through the mount and tells the daemon only when it writes
        // the inode back, so the upper directory (what a remount or a commit
        // reads) lags behind what programs saw, by microseconds that make,
        // ninja and cargo notice. Measured here, only floods of tiny flushed
        // writes gained from it (~40%); untar was even, 1 GiB sequential
        // writes were faster without it.
        // Reads are answered by splicing the upper file into the reply.
        want(FUSE_CAP_SPLICE_WRITE)
        want(FUSE_CAP_SPLICE_MOVE)
        want(FUSE_CAP_PARALLEL_DIROPS)
        want(FUSE_CAP_CACHE_SYMLINKS)
        want(FUSE_CAP_READDIRPLUS)
        // POSIX ACLs: the kernel checks them (with default_permissions) and
        // caches them per inode, dropping the cache itself on chmod and
        // setxattr through the mount; without this it asks the daemon at
        // every probe (ls -l makes one per file). DONT_MASK hands the
        // caller's umask to the daemon, which applies it unless the parent
        // has a default ACL (creationMode), as POSIX says.
        want(FUSE_CAP_POSIX_ACL)
        want(FUSE_CAP_DONT_MASK)
        // No-open mode (see PassthroughFileSystem+Files) has no OPEN to
        // truncate in: O_TRUNC comes as a SETATTR of size 0 instead (which
        // also copies up a stub, as the open did).
        conn.pointee.want &= ~UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
        // Kernel-local locks (see the ops table).
        conn.pointee.want &= ~UInt32(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS)
        // Big writes: 1 MiB per request (libfuse 3.14 allows 256 pages).
        conn.pointee.max_write = 1 << 20
        // The kernel keeps the smaller of this and the read-ahead the mount
        // had when INIT was answered (raised before, see KernelReadAhead);
        // libfuse starts from what the kernel offered at mount time.
        conn.pointee.max_readahead = UInt32(KernelReadAhead.kilobytes << 10)
        conn.pointee.time_gran = 1
    }
}
