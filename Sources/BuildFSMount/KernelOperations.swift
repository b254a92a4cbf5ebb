import CFuseKernel
import Glibc

/// The requests the own loop reads, decoded into the file system's calls:
/// each opcode's argument struct and names are read (bounds-checked: a
/// request too short for them is refused with EINVAL) and handed to the
/// PassthroughFileSystem method that serves it, inside the descriptor
/// cache's gate.
extension PassthroughFileSystem {
    func serve(_ kernelRequest: KernelRequest, on sink: any ReplySink) {
        let request = Request(kernelRequest, replyingTo: sink)
        if kernelRequest.opcode == .read && readStubOutsideGate(kernelRequest, request) { return }
        table.cache.serving(table) {
            if !dispatch(kernelRequest, request) { request.reply(error: EINVAL) }
        }
    }

    /// A READ of a stub its OPEN looked up needs no descriptor: it is
    /// answered outside the gate, so that a page-cache fill waiting for the
    /// page this READ holds never waits for an eviction (PageCacheFiller).
    /// False when the READ is not such a one (nothing was replied then).
    private func readStubOutsideGate(_ kernelRequest: KernelRequest, _ request: Request) -> Bool {
        var arguments = kernelRequest.reader()
        guard let snapshot, let read = arguments.read(buildfs_fuse_read_in.self),
              let inode = try? table.inode(kernelRequest.nodeID),
              let stub = snapshot.knownStubContent(inode) else { return false }
        self.read(request, stub, Int(read.size), off_t(Int64(bitPattern: read.offset)))
        return true
    }

    /// Calls the operation `kernelRequest` asks for; false when its
    /// arguments are not all there (nothing was replied then).
    private func dispatch(_ kernelRequest: KernelRequest, _ request: Request) -> Bool {
        var arguments = kernelRequest.reader()
        let node = kernelRequest.nodeID
        switch kernelRequest.opcode {
        case .lookup:
            guard let name = arguments.name() else { return false }
            lookup(request, node, name)
        case .forget:
            // No reply, not even to a malformed FORGET.
            if let forget = arguments.read(buildfs_fuse_forget_in.self) { self.forget(node, forget.nlookup) }
        case .batchForget:
            guard let batch = arguments.read(buildfs_fuse_batch_forget_in.self) else { return true }
            for _ in 0..<batch.count {
                guard let one = arguments.read(buildfs_fuse_forget_one.self) else { break }
                forget(one.nodeid, one.nlookup)
            }
        case .getattr:
            getattr(request, node)
        case .setattr:
            guard let change = arguments.read(buildfs_fuse_setattr_in.self) else { return false }
            var attributes = stat()
            attributes.st_mode = mode_t(change.mode)
            attributes.st_uid = change.uid
            attributes.st_gid = change.gid
            attributes.st_size = off_t(Int64(bitPattern: change.size))
            attributes.st_atim = timespec(tv_sec: Int(Int64(bitPattern: change.atime)), tv_nsec: Int(change.atimensec))
            attributes.st_mtim = timespec(tv_sec: Int(Int64(bitPattern: change.mtime)), tv_nsec: Int(change.mtimensec))
            let handle = change.valid & BUILDFS_FATTR_FH != 0 ? change.fh : 0
            setattr(request, node, attributes, AttributeChanges(rawValue: change.valid), handle: RegularFileHandle(handle))
        case .readlink:
            readlink(request, node)
        case .symlink:
            guard let name = arguments.name(), let target = arguments.name() else { return false }
            symlink(request, target, node, name)
        case .mknod:
            guard let make = arguments.read(buildfs_fuse_mknod_in.self), let name = arguments.name() else { return false }
            mknod(request, node, name, mode_t(make.mode), dev_t(make.rdev), umask: mode_t(make.umask))
        case .mkdir:
            guard let make = arguments.read(buildfs_fuse_mkdir_in.self), let name = arguments.name() else { return false }
            mkdir(request, node, name, mode_t(make.mode), umask: mode_t(make.umask))
        case .unlink:
            guard let name = arguments.name() else { return false }
            unlink(request, node, name)
        case .rmdir:
            guard let name = arguments.name() else { return false }
            rmdir(request, node, name)
        case .rename:
            guard let move = arguments.read(buildfs_fuse_rename_in.self), let name = arguments.name(),
                  let newName = arguments.name() else { return false }
            rename(request, node, name, move.newdir, newName, 0)
        case .rename2:
            guard let move = arguments.read(buildfs_fuse_rename2_in.self), let name = arguments.name(),
                  let newName = arguments.name() else { return false }
            rename(request, node, name, move.newdir, newName, move.flags)
        case .link:
            guard let link = arguments.read(buildfs_fuse_link_in.self), let newName = arguments.name() else { return false }
            self.link(request, link.oldnodeid, node, newName)
        case .open:
            guard let open = arguments.read(buildfs_fuse_open_in.self) else { return false }
            self.open(request, node, flags: Int32(bitPattern: open.flags))
        case .read:
            guard let read = arguments.read(buildfs_fuse_read_in.self) else { return false }
            self.read(request, node, Int(read.size), off_t(Int64(bitPattern: read.offset)), handle: RegularFileHandle(read.fh))
        case .write:
            guard let write = arguments.read(buildfs_fuse_write_in.self),
                  let data = arguments.bytes(Int(write.size)) else { return false }
            self.write(request, node, data, off_t(Int64(bitPattern: write.offset)), handle: RegularFileHandle(write.fh),
                       killSetID: write.write_flags & BUILDFS_FUSE_WRITE_KILL_SUIDGID != 0)
        case .statfs:
            statfs(request, node)
        case .release:
            guard let release = arguments.read(buildfs_fuse_release_in.self) else { return false }
            self.release(request, handle: RegularFileHandle(release.fh))
        case .fsync:
            guard let sync = arguments.read(buildfs_fuse_fsync_in.self) else { return false }
            fsync(request, node, dataOnly: sync.fsync_flags & BUILDFS_FUSE_FSYNC_FDATASYNC != 0,
                  handle: RegularFileHandle(sync.fh))
        case .setxattr:
            // 8 bytes of fuse_setxattr_in unless SETXATTR_EXT was granted
            // (it is not asked for).
            guard let set = arguments.read(buildfs_fuse_setxattr_in.self, size: Int(BUILDFS_FUSE_COMPAT_SETXATTR_IN_SIZE)),
                  let name = arguments.name(), let value = arguments.bytes(Int(set.size)) else { return false }
            setxattr(request, node, name, value.baseAddress, value.count, Int32(bitPattern: set.flags))
        case .getxattr:
            guard let get = arguments.read(buildfs_fuse_getxattr_in.self), let name = arguments.name() else { return false }
            getxattr(request, node, name, Int(get.size))
        case .listxattr:
            guard let list = arguments.read(buildfs_fuse_getxattr_in.self) else { return false }
            listxattr(request, node, Int(list.size))
        case .removexattr:
            guard let name = arguments.name() else { return false }
            removexattr(request, node, name)
        case .flush:
            guard let flush = arguments.read(buildfs_fuse_flush_in.self) else { return false }
            self.flush(request, handle: RegularFileHandle(flush.fh))
        case .opendir:
            opendir(request, node)
        case .readdir, .readdirplus:
            guard let read = arguments.read(buildfs_fuse_read_in.self) else { return false }
            readdir(request, node, Int(read.size), off_t(Int64(bitPattern: read.offset)), handle: read.fh,
                    plus: kernelRequest.opcode == .readdirplus)
        case .releasedir:
            guard let release = arguments.read(buildfs_fuse_release_in.self) else { return false }
            releasedir(request, handle: release.fh)
        case .fsyncdir:
            guard let sync = arguments.read(buildfs_fuse_fsync_in.self) else { return false }
            fsyncdir(request, node, dataOnly: sync.fsync_flags & BUILDFS_FUSE_FSYNC_FDATASYNC != 0, handle: sync.fh)
        case .create:
            guard let create = arguments.read(buildfs_fuse_create_in.self), let name = arguments.name() else { return false }
            self.create(request, node, name, mode_t(create.mode), flags: Int32(bitPattern: create.flags),
                        umask: mode_t(create.umask), killSetID: create.open_flags & BUILDFS_FUSE_OPEN_KILL_SUIDGID != 0)
        case .fallocate:
            guard let allocate = arguments.read(buildfs_fuse_fallocate_in.self) else { return false }
            fallocate(request, node, Int32(bitPattern: allocate.mode), off_t(Int64(bitPattern: allocate.offset)),
                      off_t(Int64(bitPattern: allocate.length)), handle: RegularFileHandle(allocate.fh))
        default:
            // No locks (the kernel keeps them itself), no ACCESS (the
            // kernel checks: default_permissions), no ioctl, poll, bmap,
            // lseek, copy_file_range, tmpfile, statx: ENOSYS makes the
            // kernel stop asking or do it itself.
            request.reply(error: ENOSYS)
        }
        return true
    }
}

extension PassthroughFileSystem {
    /// What the daemon asks of the kernel at INIT.
    ///
    /// No writeback cache: with it the kernel owns the mtimes of files
    /// written through the mount and tells the daemon only when it writes
    /// the inode back, so the upper directory (what a remount or a commit
    /// reads) lags behind what programs saw, by microseconds that make,
    /// ninja and cargo notice. Measured here, only floods of tiny flushed
    /// writes gained from it (~40%); untar was even, 1 GiB sequential
    /// writes were faster without it.
    ///
    /// POSIX ACLs: the kernel checks them (with default_permissions) and
    /// caches them per inode, dropping the cache itself on chmod and
    /// setxattr through the mount; without this it asks the daemon at every
    /// probe (ls -l makes one per file). DONT_MASK hands the caller's umask
    /// to the daemon, which applies it unless the parent has a default ACL
    /// (creationMode), as POSIX says.
    ///
    /// HANDLE_KILLPRIV_V2: the daemon clears setuid/setgid when the kernel
    /// says so (dropSetID), and the kernel stops asking for
    /// security.capability before every write.
    ///
    /// Not asked: ATOMIC_O_TRUNC (no-open mode has no OPEN to truncate in:
    /// O_TRUNC comes as a SETATTR of size 0, which also copies up a stub),
    /// POSIX and flock locks (the kernel keeps them itself, which is right
    /// while the mount is the only way to the files), SETXATTR_EXT.
    ///
    /// Passthrough (PassthroughFiles) only without a snapshot: it costs an
    /// OPEN round trip per open() (no-open mode and passthrough exclude each
    /// other), which a mount of upper files repays in reads and writes at
    /// native speed (bench/results/mount.md), and a mount over a snapshot,
    /// whose files are stubs read through the daemon anyway, does not: a
    /// warm read of every file of a 9k-file snapshot took 0.70 s with it,
    /// 0.46 s without.
    var initTerms: KernelInit {
        var wanted: KernelFeatures = [.asyncRead, .parallelDirectoryOperations, .autoInvalidateData, .asyncDirectIO,
                                      .readdirplus, .readdirplusAuto, .cacheSymlinks, .bigWrites, .posixACL,
                                      .dontMask, .handleKillPrivV2]
        if snapshot == nil { wanted.insert(.passthrough) }
        // Big writes: 1 MiB per request; read-ahead: see KernelReadAhead.
        return KernelInit(wanted: wanted, maxWrite: 1 << 20, maxReadahead: UInt32(KernelReadAhead.kilobytes << 10))
    }
}
