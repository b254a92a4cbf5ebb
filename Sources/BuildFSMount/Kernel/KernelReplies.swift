import CFuseKernel
import Glibc

// The fixed reply structs, built from what the system calls return. Send
// them with KernelChannel.reply(unique:_:).

/// A cache timeout as the kernel takes it: whole seconds and nanoseconds
/// (as libfuse splits a double: negative is 0, the fraction is capped
/// below one second).
struct KernelTimeout: Equatable, Sendable {
    var seconds: UInt64
    var nanoseconds: UInt32

    init(seconds: UInt64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    init(_ interval: Double) {
        if !(interval > 0) {
            seconds = 0
            nanoseconds = 0
        } else if interval >= Double(UInt64.max) {
            seconds = .max
            nanoseconds = 999_999_999
        } else {
            seconds = UInt64(interval)
            let fraction = interval - Double(seconds)
            nanoseconds = fraction >= 0.999_999_999 ? 999_999_999 : UInt32(max(0, fraction) * 1e9)
        }
    }
}

extension buildfs_fuse_attr {
    /// The attributes the kernel caches for an inode, from stat(2).
    /// rdev keeps its low 32 bits, where glibc and the kernel encode
    /// major/minor alike (majors below 4096).
    init(_ status: stat) {
        self.init()
        ino = UInt64(status.st_ino)
        size = UInt64(bitPattern: Int64(status.st_size))
        blocks = UInt64(bitPattern: Int64(status.st_blocks))
        atime = UInt64(bitPattern: Int64(status.st_atim.tv_sec))
        mtime = UInt64(bitPattern: Int64(status.st_mtim.tv_sec))
        ctime = UInt64(bitPattern: Int64(status.st_ctim.tv_sec))
        atimensec = UInt32(truncatingIfNeeded: status.st_atim.tv_nsec)
        mtimensec = UInt32(truncatingIfNeeded: status.st_mtim.tv_nsec)
        ctimensec = UInt32(truncatingIfNeeded: status.st_ctim.tv_nsec)
        mode = status.st_mode
        nlink = UInt32(truncatingIfNeeded: status.st_nlink)
        uid = status.st_uid
        gid = status.st_gid
        rdev = UInt32(truncatingIfNeeded: status.st_rdev)
        blksize = UInt32(truncatingIfNeeded: status.st_blksize)
    }
}

extension buildfs_fuse_entry_out {
    /// The reply to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK (and CREATE's
    /// first half): the node the name leads to, for how long the name and
    /// the attributes may be cached. Node 0 caches the name's absence.
    init(node: UInt64, generation: UInt64 = 0, attributes: stat, entryTimeout: Double, attributeTimeout: Double) {
        self.init()
        nodeid = node
        self.generation = generation
        let nameValid = KernelTimeout(entryTimeout), attributesValid = KernelTimeout(attributeTimeout)
        entry_valid = nameValid.seconds
        entry_valid_nsec = nameValid.nanoseconds
        attr_valid = attributesValid.seconds
        attr_valid_nsec = attributesValid.nanoseconds
        attr = buildfs_fuse_attr(attributes)
    }
}

extension buildfs_fuse_attr_out {
    /// The reply to GETATTR and SETATTR.
    init(attributes: stat, timeout: Double) {
        self.init()
        let valid = KernelTimeout(timeout)
        attr_valid = valid.seconds
        attr_valid_nsec = valid.nanoseconds
        attr = buildfs_fuse_attr(attributes)
    }
}

extension buildfs_fuse_open_out {
    /// The reply to OPEN and OPENDIR (and CREATE's second half): the
    /// handle later requests carry, FOPEN_* flags, and with
    /// FOPEN_PASSTHROUGH the id FUSE_DEV_IOC_BACKING_OPEN gave.
    init(handle: UInt64, flags: UInt32, backingID: Int32 = 0) {
        self.init(fh: handle, open_flags: flags, backing_id: backingID)
    }
}

extension buildfs_fuse_write_out {
    /// The reply to WRITE: how many bytes were written.
    init(written: Int) { self.init(size: UInt32(clamping: written), padding: 0) }
}

extension buildfs_fuse_getxattr_out {
    /// The reply to GETXATTR and LISTXATTR asked with size 0: the size
    /// the value (or the list) needs.
    init(needed: Int) { self.init(size: UInt32(clamping: needed), padding: 0) }
}

extension buildfs_fuse_statfs_out {
    /// The reply to STATFS, from statvfs(3).
    init(_ info: statvfs) {
        self.init()
        st.blocks = UInt64(info.f_blocks)
        st.bfree = UInt64(info.f_bfree)
        st.bavail = UInt64(info.f_bavail)
        st.files = UInt64(info.f_files)
        st.ffree = UInt64(info.f_ffree)
        st.bsize = UInt32(truncatingIfNeeded: info.f_bsize)
        st.namelen = UInt32(truncatingIfNeeded: info.f_namemax)
        st.frsize = UInt32(truncatingIfNeeded: info.f_frsize)
    }
}
