import Foundation
import Glibc

/// Reading files under /proc (mounts, status, ...), to the end.
///
/// procfs files report size 0 and are produced a page at a time, so a reader
/// that trusts the size or stops after one read() gets only the first 4 KiB:
/// a container's /proc/self/mounts is often longer (cibuildwheel's
/// `-v /:/host` alone makes it ~6 KB). Every read of /proc goes through here.
public enum ProcFile {
    /// The whole file as text, or nil when it cannot be opened or read.
    /// `limit` guards against a runaway file (a strange container's /proc).
    public static func read(_ path: String, limit: Int = 64 << 20) -> String? {
        guard let file = try? FileDescriptor.open(path, O_RDONLY),
              let bytes = try? file.readAll(limit: limit) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The value of one `Name:\tvalue` line of a /proc/PID/status file.
    public static func statusField(_ name: String, pid: String = "self") -> String? {
        guard let status = read("/proc/\(pid)/status") else { return nil }
        let prefix = name + ":"
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
    }
}
