import BuildFSCore
import CFuse3
import CLinuxCalls
import Glibc

/// Extended attributes, passed through to the upper file (through its /proc
/// path: the *xattr calls do not take O_PATH descriptors).
extension PassthroughFileSystem {
    func getxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>, _ size: Int) {
        replying(req) {
            if UpperLayout.isInternalAttribute(name) { throw SystemCallError("getxattr", code: ENODATA) }
            let path = table.inode(ino).procPath
            do {
                if size == 0 {
                    fuse_reply_xattr(req, try sys("getxattr") { CLinuxCalls.getxattr(path, name, nil, 0) })
                } else {
                    var value = [UInt8](repeating: 0, count: size)
                    let n = try sys("getxattr") { CLinuxCalls.getxattr(path, name, &value, size) }
                    fuse_reply_buf(req, value, n)
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

    func listxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int) {
        replying(req) {
            let path = table.inode(ino).procPath
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
                fuse_reply_xattr(req, visible.count)
            } else if visible.count > size {
                throw SystemCallError("listxattr", code: ERANGE)
            } else {
                fuse_reply_buf(req, visible, visible.count)
            }
        }
    }

    func setxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>,
                  _ value: UnsafePointer<CChar>?, _ size: Int, _ flags: Int32) {
        replying(req) {
            if UpperLayout.isInternalAttribute(name) { throw SystemCallError("setxattr", code: EPERM) }
            try sys("setxattr") { CLinuxCalls.setxattr(table.inode(ino).procPath, name, value, size, flags) }
            fuse_reply_err(req, 0)
        }
    }

    func removexattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>) {
        replying(req) {
            if UpperLayout.isInternalAttribute(name) { throw SystemCallError("removexattr", code: ENODATA) }
            try sys("removexattr") { CLinuxCalls.removexattr(table.inode(ino).procPath, name) }
            fuse_reply_err(req, 0)
        }
    }
}
