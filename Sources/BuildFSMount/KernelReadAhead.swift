import BuildFSCore
import Glibc

/// How far the kernel reads a file of the mount ahead of its reader. It
/// reads a FUSE file in windows of the mount's read_ahead_kb (a property of
/// its backing device, 128 KiB by default), one READ per window, one or two
/// in flight: each READ of a snapshot file costs a decompression and a hash
/// in the daemon, so small windows leave the reader waiting on each in turn.
/// 1 MiB windows (as large as a READ may be: max_write sets max_pages)
/// made reading a build tree's large files through a fresh mount over a
/// snapshot ~25% faster here (bench/results/snapshot-mount.md); reading
/// upper files was as fast either way, so plain mounts keep the default.
///
/// Two steps, because the kernel settles the window when the daemon answers
/// INIT, to the smaller of the device's read_ahead_kb then and the daemon's
/// max_readahead: `raise` before the request loop starts, and
/// max_readahead in the INIT answer (PassthroughFileSystem.initTerms).
enum KernelReadAhead {
    static let kilobytes = 1024

    /// Raises the read-ahead of the FUSE mount at `mountpoint` (resolved:
    /// resolving it now would stat the mount before it serves) to
    /// `kilobytes`, never lowers it. Returns a line for the daemon log when
    /// it cannot: /sys is read-only in most containers, and the mount works
    /// the same without, only reads large files slower.
    static func raise(mountpoint: String) -> String? {
        guard let device = device(of: mountpoint) else {
            return "read-ahead left as it is: \(mountpoint) not found in /proc/self/mountinfo"
        }
        let path = "/sys/class/bdi/\(device)/read_ahead_kb"
        if let text = ProcFile.read(path), let current = Int(text.filter(\.isNumber)), current >= kilobytes {
            return nil
        }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return "read-ahead left at the kernel's default: cannot open \(path): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        let value = Array("\(kilobytes)\n".utf8)
        guard write(fd, value, value.count) == value.count else {
            return "read-ahead left at the kernel's default: cannot write \(path): \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// The "major:minor" of the last mount at `mountpoint` whose file system
    /// is FUSE, from mountinfo (fields: id, parent, major:minor, root, mount
    /// point, ..., "-", type, ...).
    static func device(of mountpoint: String, mountinfo: String? = ProcFile.read("/proc/self/mountinfo")) -> String? {
        guard let mountinfo else { return nil }
        var found: String?
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count,
                  fields[dash + 1].hasPrefix("fuse"),
                  MountPreflight.unescapeMountField(String(fields[4])) == mountpoint else { continue }
            let device = fields[2]
            // Used in a /sys path: digits and one colon, nothing else.
            let parts = device.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
            else { continue }
            found = String(device)
        }
        return found
    }
}
