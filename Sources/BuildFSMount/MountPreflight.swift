import BuildFSCore
import Foundation
import Glibc

/// Checks made before mounting, so that what users get wrong ends in one
/// line that says what to do, instead of libfuse's messages.
public enum MountPreflight {
    static let containerHint = "in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN "
        + "(and --security-opt apparmor:unconfined where AppArmor blocks mounts)"

    public static func check(mountpoint: String, upper: String) throws {
        try checkFuseDevice()
        try checkMountpoint(mountpoint)
        try checkUpper(upper)
        if geteuid() != 0 && findInPath("fusermount3") == nil {
            throw BuildFSError.usage("fusermount3 not found: install the fuse3 package (apt-get install fuse3), or mount as root")
        }
    }

    static func checkFuseDevice() throws {
        let fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "no /dev/fuse" : "cannot open /dev/fuse (\(String(cString: strerror(errno))))"
            throw BuildFSError.usage("\(reason): load the fuse module (modprobe fuse), or \(containerHint)")
        }
        close(fd)
    }

    static func checkMountpoint(_ mountpoint: String) throws {
        var st = Glibc.stat()
        guard stat(mountpoint, &st) == 0 else {
            switch errno {
            case ENOENT:
                throw BuildFSError.badTarget(path: mountpoint, reason: "mountpoint does not exist; create it first (mkdir -p \(mountpoint))")
            case ENOTCONN:
                throw BuildFSError.badTarget(path: mountpoint, reason: "holds a dead buildfs mount (its daemon died); run `buildfs umount \(mountpoint)` first")
            default:
                throw SystemCallError("mountpoint", mountpoint)
            }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw BuildFSError.badTarget(path: mountpoint, reason: "mountpoint is not a directory") }
        // Mounting over another file system (a tmpfs, a container volume at
        // /work) is what users do; over a live buildfs mount it is a mistake.
        let resolved = resolvedPath(mountpoint)
        if mountEntries().last(where: { $0.mountpoint == resolved })?.type == "fuse.buildfs" {
            throw BuildFSError.badTarget(path: mountpoint, reason: "is already a buildfs mount; run `buildfs umount \(mountpoint)` first or pick another mountpoint")
        }
    }

    static func checkUpper(_ upper: String) throws {
        var st = Glibc.stat()
        guard stat(upper, &st) == 0 else {
            throw BuildFSError.badTarget(path: upper, reason: errno == ENOENT
                ? "upper directory does not exist; create it first (mkdir -p \(upper))"
                : "upper directory: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw BuildFSError.badTarget(path: upper, reason: "upper directory is not a directory") }
        var fs = statvfs()
        if access(upper, W_OK) != 0 || (statvfs(upper, &fs) == 0 && fs.f_flag & UInt(ST_RDONLY) != 0) {
            throw BuildFSError.badTarget(path: upper, reason: "upper directory is not writable; pick a writable --upper")
        }
    }

    /// (mount point, file system type) of every mount, octal escapes undone.
    public static func mountEntries() -> [(mountpoint: String, type: String)] {
        guard let text = ProcFile.read("/proc/self/mounts") else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { return nil }
            return (unescapeMountField(String(fields[1])), String(fields[2]))
        }
    }

    static func unescapeMountField(_ field: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "\\"), utf8.count >= 3, let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The absolute path without symlinks; for a path that cannot be
    /// resolved (a dead mount), the absolute path as given.
    public static func resolvedPath(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (absolute as NSString).standardizingPath
    }

    static func findInPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        for dir in ["/usr/bin", "/bin", "/usr/local/bin"] where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }
}
