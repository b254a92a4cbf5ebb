import Foundation
import Glibc

/// A fresh directory under /tmp, removed (with anything mounted in it
/// unmounted first) when the object goes away.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "buildfs-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    public func sub(_ name: String) -> String { path + "/" + name }

    deinit {
        // Unmount anything a test left mounted below us, deepest first.
        for mountPoint in mountPoints(under: path).sorted(by: { $0.count > $1.count }) {
            umount2(mountPoint, Int32(MNT_DETACH))
        }
        _ = try? FileManager.default.removeItem(atPath: path)
    }
}

/// Seeded pseudo-random numbers (splitmix64), so a failing seed replays.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return out
    }
}

/// Writes `bytes` to a new file at `path`.
public func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    precondition(fd >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
    bytes.withUnsafeBytes { buffer in
        var done = 0
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            precondition(n > 0, "write \(path) failed")
            done += n
        }
    }
    close(fd)
}

/// Sets an mtime to the nanosecond, without following a symlink.
public func setMtime(_ path: String, seconds: Int, nanoseconds: Int) {
    var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
    precondition(utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0, "utimensat \(path)")
}

/// A /proc file read to its end: `String(contentsOfFile:)` stops after the
/// first 4 KiB of a procfs file, and a mount table is often longer.
public func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var block = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }
        if n == 0 { return String(decoding: bytes, as: UTF8.self) }
        bytes += block[0..<n]
    }
}

/// Mount points at or below `path`, from /proc/mounts.
public func mountPoints(under path: String) -> [String] {
    guard let mounts = readProcFile("/proc/mounts") else { return [] }
    var result: [String] = []
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count > 1 else { continue }
        let mountPoint = String(fields[1])
        if mountPoint == path || mountPoint.hasPrefix(path + "/") { result.append(mountPoint) }
    }
    return result
}
