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
        ops.lookup = { req, parent, name in fileSystem(req).lookup(req!, parent, name!) }
        ops.forget = { req, ino, count in
            fileSystem(req).forget(ino, count)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let fs = fileSystem(req)
            for i in 0..<count { fs.forget(forgets![i].ino, forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, _ in fileSystem(req).getattr(req!, ino) }
        ops.setattr = { req, ino, attr, toSet, fi in fileSystem(req).setattr(req!, ino, attr!.pointee, toSet, fi) }
        ops.readlink = { req, ino in fileSystem(req).readlink(req!, ino) }
        ops.mknod = { req, parent, name, mode, rdev in fileSystem(req).mknod(req!, parent, name!, mode, rdev) }
        ops.mkdir = { req, parent, name, mode in fileSystem(req).mkdir(req!, parent, name!, mode) }
        ops.unlink = { req, parent, name in fileSystem(req).unlink(req!, parent, name!) }
        ops.rmdir = { req, parent, name in fileSystem(req).rmdir(req!, parent, name!) }
        ops.symlink = { req, target, parent, name in fileSystem(req).symlink(req!, target!, parent, name!) }
        ops.rename = { req, parent, name, newParent, newName, flags in
            fileSystem(req).rename(req!, parent, name!, newParent, newName!, flags)
        }
        ops.link = { req, ino, newParent, newName in fileSystem(req).link(req!, ino, newParent, newName!) }
        ops.open = { req, ino, fi in fileSystem(req).open(req!, ino, fi!) }
        ops.read = { req, _, size, offset, fi in fileSystem(req).read(req!, size, offset, fi!) }
        ops.write_buf = { req, _, buffers, offset, fi in fileSystem(req).writeBuffer(req!, buffers!, offset, fi!) }
        ops.flush = { req, _, fi in fileSystem(req).flush(req!, fi!) }
        ops.release = { req, _, fi in fileSystem(req).release(req!, fi!) }
        ops.fsync = { req, _, dataOnly, fi in fileSystem(req).fsync(req!, dataOnly != 0, fi!) }
        ops.opendir = { req, ino, fi in fileSystem(req).opendir(req!, ino, fi!) }
        ops.readdir = { req, ino, size, offset, fi in fileSystem(req).readdir(req!, ino, size, offset, fi!, plus: false) }
        ops.readdirplus = { req, ino, size, offset, fi in fileSystem(req).readdir(req!, ino, size, offset, fi!, plus: true) }
        ops.releasedir = { req, _, fi in fileSystem(req).releasedir(req!, fi!) }
        ops.fsyncdir = { req, _, dataOnly, fi in fileSystem(req).fsyncdir(req!, dataOnly != 0, fi!) }
        ops.statfs = { req, ino in fileSystem(req).statfs(req!, ino) }
        ops.setxattr = { req, ino, name, value, size, flags in
            fileSystem(req).setxattr(req!, ino, name!, value, size, flags)
        }
        ops.getxattr = { req, ino, name, size in fileSystem(req).getxattr(req!, ino, name!, size) }
        ops.listxattr = { req, ino, size in fileSystem(req).listxattr(req!, ino, size) }
        ops.removexattr = { req, ino, name in fileSystem(req).removexattr(req!, ino, name!) }
        ops.create = { req, parent, name, mode, fi in fileSystem(req).create(req!, parent, name!, mode, fi!) }
        ops.fallocate = { req, _, mode, offset, length, fi in
            fileSystem(req).fallocate(req!, mode, offset, length, fi!)
        }
        // No getlk/setlk/flock: without them the kernel keeps POSIX and
        // flock locks itself, which is right while the mount is the only
        // way to the files.
        return ops
    }
}

/// The file system a request is for. Top-level: a static method would make
/// the callbacks capture their type, which a C function pointer cannot.
@inline(__always)
private func fileSystem(_ req: fuse_req_t?) -> PassthroughFileSystem {
    Unmanaged<PassthroughFileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

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
        // Kernel-local locks (see the ops table).
        conn.pointee.want &= ~UInt32(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS)
        // Big writes: 1 MiB per request (libfuse 3.14 allows 256 pages).
        conn.pointee.max_write = 1 << 20
        conn.pointee.time_gran = 1
    }
}
