import BuildFSCore
import CLinuxCalls
import Glibc

/// Attributes: stat, setattr, readlink and statfs on the inode's descriptor;
/// extended attributes passed through to the upper file (through its /proc
/// path: the *xattr calls do not take O_PATH descriptors), ours hidden.
extension PassthroughFileSystem {
    func getattr(_ request: Request, _ ino: UInt64) {
        replying(request) {
            let inode = try table.inode(ino)
            request.reply(attributes: presented(inode, try statOf(inode)), timeout: timeout)
        }
    }

    func setattr(_ request: Request, _ ino: UInt64, _ attr: stat, _ changes: AttributeChanges,
                 handle fileHandle: RegularFileHandle) {
        replying(request) {
            let inode = try table.inode(ino)
            // A truncate changes content: a stub gets its bytes first.
            if changes.contains(.size) { try snapshot?.copyUpIfStub(inode) }
            let handle = fileHandle.descriptor
            if changes.contains(.mode) {
                if let handle { try sys("fchmod") { fchmod(handle, attr.st_mode) } } else { try sys("chmod") { chmod(inode.procPath, attr.st_mode) } }
            } else if changes.contains(.killSetID) {
                try dropSetID(inode)
            }
            if !changes.isDisjoint(with: [.uid, .gid]) {
                let uid = changes.contains(.uid) ? attr.st_uid : uid_t.max
                let gid = changes.contains(.gid) ? attr.st_gid : gid_t.max
                try sys("fchownat") { fchownat(inode.fd, "", uid, gid, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
            }
            if changes.contains(.size) {
                if let handle { try sys("ftruncate") { ftruncate(handle, attr.st_size) } } else { try sys("truncate") { truncate(inode.procPath, attr.st_size) } }
            }
            if !changes.isDisjoint(with: [.atime, .mtime]) {
                var times = [timespec(tv_sec: 0, tv_nsec: BUILDFS_UTIME_OMIT), timespec(tv_sec: 0, tv_nsec: BUILDFS_UTIME_OMIT)]
                if changes.contains(.atimeNow) {
                    times[0].tv_nsec = BUILDFS_UTIME_NOW
                } else if changes.contains(.atime) {
                    times[0] = attr.st_atim
                }
                if changes.contains(.mtimeNow) {
                    times[1].tv_nsec = BUILDFS_UTIME_NOW
                } else if changes.contains(.mtime) {
                    times[1] = attr.st_mtim
                }
                if let handle {
                    try sys("futimens") { futimens(handle, &times) }
                } else {
                    try sys("utimensat") { utimensat(inode.fd, "", &times, BUILDFS_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) }
                }
            }
            request.reply(attributes: presented(inode, try statOf(inode)), timeout: timeout)
        }
    }

    /// Clears a regular file's setuid bit, and its setgid bit where group
    /// execution is allowed, as the kernel does when an unprivileged
    /// caller writes or truncates (FUSE_HANDLE_KILLPRIV_V2 leaves that to
    /// the daemon, whose own writes keep them: it has CAP_FSETID).
    /// Returns whether the mode changed.
    @discardableResult
    func dropSetID(_ inode: Inode) throws -> Bool {
        let mode = try statOf(inode).st_mode
        guard mode & S_IFMT == S_IFREG else { return false }
        var kept = mode & 0o7777 & ~S_ISUID
        if kept & S_IXGRP != 0 { kept &= ~S_ISGID }
        guard kept != mode & 0o7777 else { return false }
        try sys("chmod") { chmod(inode.procPath, kept) }
        return true
    }

    func readlink(_ request: Request, _ ino: UInt64) {
        replying(request) {
            let inode = try table.inode(ino)
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            let n = try sys("readlinkat") { readlinkat(inode.fd, "", &buffer, buffer.count) }
            buffer.withUnsafeBytes { request.reply(bytes: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
    }

    func statfs(_ request: Request, _ ino: UInt64) {
        replying(request) {
            let inode = try table.inode(ino)
            var info = statvfs()
            try sys("fstatvfs") { fstatvfs(inode.fd, &info) }
            request.reply(fileSystem: info)
        }
    }

    func getxattr(_ request: Request, _ ino: UInt64, _ name: UnsafePointer<CChar>, _ size: Int) {
        replying(request) {
            if UpperLayout.isInternalAttribute(name) { throw SystemCallError("getxattr", code: ENODATA) }
            let path = try table.inode(ino).procPath
            do {
                if size == 0 {
                    request.reply(attributeSize: try sys("getxattr") { CLinuxCalls.getxattr(path, name, nil, 0) })
                } else {
                    var value = [UInt8](repeating: 0, count: size)
                    let n = try sys("getxattr") { CLinuxCalls.getxattr(path, name, &value, size) }
                    value.withUnsafeBytes { request.reply(bytes: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                }
            } catch let error as SystemCallError where error.code == ENODATA && strncmp(name, "security.", 9) == 0 {
                // FUSE caches no xattrs, and `ls -l` asks every file for its
                // SELinux label. "Not supported" (never ENOSYS: the kernel
                // would then stop forwarding every getxattr, ACLs included)
                // makes coreutils stop asking for the rest of this device.
                // Labels that exist are still returned above.
                throw SystemCallError("getxattr", code: EOPNOTSUPP)
            }
        }
    }

    func listxattr(_ request: Request, _ ino: UInt64, _ size: Int) {
        replying(request) {
            let path = try table.inode(ino).procPath
            // Our own names are left out of the list.
            let needed = try sys("listxattr") { CLinuxCalls.listxattr(path, nil, 0) }
            var names = [CChar](repeating: 0, count: max(needed, 1))
            let n = try sys("listxattr") { CLinuxCalls.listxattr(path, &names, names.count) }
            var visible: [CChar] = []
            for name in names[0..<n].split(separator: 0, omittingEmptySubsequences: true) {
                let item = Array(name) + [0]
                if !item.withUnsafeBufferPointer({ UpperLayout.isInternalAttribute($0.baseAddress!) }) { visible += item }
            }
            if size == 0 {
                request.reply(attributeSize: visible.count)
            } else if visible.count > size {
                throw SystemCallError("listxattr", code: ERANGE)
            } else {
                visible.withUnsafeBytes { request.reply(bytes: $0) }
            }
        }
    }

    func setxattr(_ request: Request, _ ino: UInt64, _ name: UnsafePointer<CChar>,
                  _ value: UnsafeRawPointer?, _ size: Int, _ flags: Int32) {
        replying(request) {
            if UpperLayout.isInternalAttribute(name) { throw SystemCallError("setxattr", code: EPERM) }
            let path = try table.inode(ino).procPath
            try sys("setxattr") { CLinuxCalls.setxattr(path, name, value, size, flags) }
            request.replySuccess()
        }
    }

    func removexattr(_ request: Request, _ ino: UInt64, _ name: UnsafePointer<CChar>) {
        replying(request) {
            if UpperLayout.isInternalAttribute(name) { throw SystemCallError("removexattr", code: ENODATA) }
            let path = try table.inode(ino).procPath
            try sys("removexattr") { CLinuxCalls.removexattr(path, name) }
            request.replySuccess()
        }
    }
}
