import Foundation
import Glibc
import Testing

/// Records what each step of a scenario returned (success, errno name, the
/// stat fields that matter, contents), so that one scenario run on the mount
/// and on a plain directory can be compared line by line. Paths are relative
/// to `root`; nothing recorded depends on where the root is (no inode or
/// device numbers, no implicit timestamps).
final class Probe {
    let root: String
    private(set) var lines: [String] = []

    init(root: String) { self.root = root }

    func path(_ relative: String) -> String { relative.isEmpty ? root : root + "/" + relative }

    func note(_ line: String) { lines.append(line) }

    /// Notes what a listing missed, repeated or added, so that a failure
    /// says which names (nothing is noted when the listing is right).
    func noteSetDifference(_ label: String, got: [String], expected: [String]) {
        let counts = Dictionary(got.map { ($0, 1) }, uniquingKeysWith: +)
        let repeated = counts.filter { $0.value > 1 }.keys.sorted()
        let missing = Set(expected).subtracting(got).sorted()
        let extra = Set(got).subtracting(expected).sorted()
        for (kind, names) in [("missing", missing), ("repeated", repeated), ("extra", extra)] where !names.isEmpty {
            note("\(label) \(kind) \(names.count): \(names.prefix(5).joined(separator: ", "))")
        }
    }

    /// Records `label: ok` (or `= value` when `value`), or `label: ENAME`.
    @discardableResult
    func check<T: BinaryInteger>(_ label: String, _ result: T, value: Bool = false) -> T {
        if result < 0 {
            note("\(label): \(errnoName(errno))")
        } else {
            note(value ? "\(label) = \(result)" : "\(label): ok")
        }
        return result
    }

    /// The fields of a stat a build can observe, minus those that differ
    /// between any two file systems (inode, device, implicit times).
    struct Fields: OptionSet {
        let rawValue: Int
        static let kind = Fields(rawValue: 1), mode = Fields(rawValue: 2), size = Fields(rawValue: 4)
        static let nlink = Fields(rawValue: 8), owner = Fields(rawValue: 16), mtime = Fields(rawValue: 32)
        static let atime = Fields(rawValue: 64), rdev = Fields(rawValue: 128)
        static let standard: Fields = [.kind, .mode, .size, .nlink, .owner]
        static let exactTimes: Fields = [.standard, .mtime, .atime]
    }

    static func describe(_ st: stat, _ fields: Fields) -> String {
        var parts: [String] = []
        if fields.contains(.kind) { parts.append(kindName(st.st_mode)) }
        if fields.contains(.mode) { parts.append("mode=" + String(st.st_mode & 0o7777, radix: 8)) }
        // Directory sizes are the backing file system's business.
        if fields.contains(.size) && (st.st_mode & S_IFMT) != S_IFDIR { parts.append("size=\(st.st_size)") }
        if fields.contains(.nlink) { parts.append("nlink=\(st.st_nlink)") }
        if fields.contains(.owner) { parts.append("owner=\(st.st_uid):\(st.st_gid)") }
        if fields.contains(.mtime) { parts.append("mtime=\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)") }
        if fields.contains(.atime) { parts.append("atime=\(st.st_atim.tv_sec).\(st.st_atim.tv_nsec)") }
        if fields.contains(.rdev) { parts.append("rdev=\(st.st_rdev)") }
        return parts.joined(separator: " ")
    }

    /// lstat (or stat when `follow`) of a path, recorded.
    @discardableResult
    func stat(_ relative: String, follow: Bool = false, _ fields: Fields = .standard) -> Glibc.stat? {
        var st = Glibc.stat()
        let rc = follow ? statFollowing(path(relative), &st) : lstat(path(relative), &st)
        let label = "\(follow ? "stat" : "lstat") \(relative.isEmpty ? "." : relative)"
        guard rc == 0 else {
            note("\(label): \(errnoName(errno))")
            return nil
        }
        note("\(label): \(Probe.describe(st, fields))")
        return st
    }

    @discardableResult
    func fstat(_ label: String, _ fd: Int32, _ fields: Fields = .standard) -> Glibc.stat? {
        var st = Glibc.stat()
        guard Glibc.fstat(fd, &st) == 0 else {
            note("fstat \(label): \(errnoName(errno))")
            return nil
        }
        note("fstat \(label): \(Probe.describe(st, fields))")
        return st
    }

    /// Opens, recording the outcome under `label`.
    @discardableResult
    func open(_ relative: String, _ flags: Int32, _ mode: mode_t = 0o644, label: String? = nil) -> Int32 {
        check(label ?? "open \(relative)", Glibc.open(path(relative), flags, mode))
    }

    /// Creates (or truncates) a file holding `text`, recorded.
    func create(_ relative: String, _ text: String, mode: mode_t = 0o644) {
        let fd = Glibc.open(path(relative), O_CREAT | O_WRONLY | O_TRUNC, mode)
        guard fd >= 0 else { return note("create \(relative): \(errnoName(errno))") }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let closed = close(fd)
        note("create \(relative): \(n == bytes.count && closed == 0 ? "ok" : errnoName(errno))")
    }

    /// Reads a whole file by path and records its size and a short digest.
    @discardableResult
    func contents(_ relative: String) -> [UInt8]? {
        let fd = Glibc.open(path(relative), O_RDONLY)
        guard fd >= 0 else {
            note("contents \(relative): \(errnoName(errno))")
            return nil
        }
        defer { close(fd) }
        let bytes = readAll(fd)
        note("contents \(relative): \(describeBytes(bytes))")
        return bytes
    }

    /// Reads from `offset` to the end through `fd`, recorded.
    @discardableResult
    func pread(_ label: String, _ fd: Int32, from offset: off_t = 0) -> [UInt8] {
        let bytes = readAll(fd, from: offset)
        note("pread \(label): \(describeBytes(bytes))")
        return bytes
    }

    /// Writes all of `bytes` at `offset`, recorded as the count written.
    @discardableResult
    func pwrite(_ label: String, _ fd: Int32, _ bytes: [UInt8], at offset: off_t) -> Int {
        check("pwrite \(label)", bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, offset) }, value: true)
    }

    /// Directory entry names (without . and ..), sorted.
    @discardableResult
    func list(_ relative: String, record: Bool = true) -> [String]? {
        guard let names = directoryEntries(path(relative)) else {
            if record { note("list \(relative): \(errnoName(errno))") }
            return nil
        }
        let sorted = names.map(\.name).filter { $0 != "." && $0 != ".." }.sorted()
        if record { note("list \(relative.isEmpty ? "." : relative): \(sorted)") }
        return sorted
    }
}

/// stat(2), under a name that the `stat` struct does not shadow.
func statFollowing(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }

/// Reads from `offset` to end of file.
func readAll(_ fd: Int32, from offset: off_t = 0) -> [UInt8] {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 17)
    var position = offset
    while true {
        let n = pread(fd, &buffer, buffer.count, position)
        if n <= 0 { break }
        bytes += buffer[0..<n]
        position += off_t(n)
    }
    return bytes
}

/// Short text for a byte string: itself when short and printable, else size
/// and digest.
func describeBytes(_ bytes: [UInt8]) -> String {
    if bytes.count <= 40 && bytes.allSatisfy({ $0 >= 32 && $0 < 127 }) {
        return "\"" + String(decoding: bytes, as: UTF8.self) + "\""
    }
    return "\(bytes.count) bytes fnv:" + String(fnv1a(bytes), radix: 16)
}

/// FNV-1a, 64 bits: enough to tell contents apart in a comparison.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}

func kindName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "file"
    case S_IFDIR: return "dir"
    case S_IFLNK: return "symlink"
    case S_IFIFO: return "fifo"
    case S_IFCHR: return "chardev"
    case S_IFBLK: return "blockdev"
    case S_IFSOCK: return "socket"
    default: return "kind?\(mode & S_IFMT)"
    }
}

/// One readdir pass: names with d_type, or nil (errno set) when the
/// directory cannot be opened.
func directoryEntries(_ path: String) -> [(name: String, type: UInt8)]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var result: [(name: String, type: UInt8)] = []
    errno = 0
    while let entry = readdir(dir) {
        var name = entry.pointee.d_name
        let text = withUnsafePointer(to: &name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        result.append((text, entry.pointee.d_type))
        errno = 0
    }
    // readdir's NULL is the end or an error; an error must not pass as a short listing.
    if errno != 0 { result.append(("(readdir failed: \(errnoName(errno)))", 0)) }
    return result
}

func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN",
        EACCES: "EACCES", EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR",
        EISDIR: "EISDIR", EINVAL: "EINVAL", EFBIG: "EFBIG", ENOSPC: "ENOSPC", EROFS: "EROFS",
        EMLINK: "EMLINK", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS",
        ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", ENODATA: "ENODATA", EOPNOTSUPP: "EOPNOTSUPP",
        ENOTCONN: "ENOTCONN", ETXTBSY: "ETXTBSY", ENXIO: "ENXIO", ESPIPE: "ESPIPE", ENOTTY: "ENOTTY",
        E2BIG: "E2BIG", EDEADLK: "EDEADLK", ENOLCK: "ENOLCK",
    ]
    return names[code] ?? "errno \(code)"
}

/// Runs `scenario` on a plain directory, then on the mount, and expects the
/// two records to be equal. `expecting` are lines the plain run must contain,
/// so a scenario that stopped testing what it claims fails too. Returns the
/// plain run's lines.
@discardableResult
func expectSameOnMountAndPlain(_ fixture: MountFixture, expecting: [String] = [],
                               sourceLocation: SourceLocation = #_sourceLocation,
                               _ scenario: (Probe) throws -> Void) rethrows -> [String] {
    let plain = Probe(root: fixture.plain)
    try scenario(plain)
    let mounted = Probe(root: fixture.mnt)
    try scenario(mounted)
    for line in expecting {
        #expect(plain.lines.contains(line), "scenario sanity: plain directory gave no \"\(line)\"; got \(plain.lines)",
                sourceLocation: sourceLocation)
    }
    let differences = lineDifferences(expected: plain.lines, got: mounted.lines)
    #expect(differences.isEmpty, Comment(rawValue: "\(MountKind.current.rawValue) differs from a plain directory:\n"
            + differences.joined(separator: "\n")), sourceLocation: sourceLocation)
    return plain.lines
}

/// "expected X, got Y" per differing line, positions aligned.
func lineDifferences(expected: [String], got: [String]) -> [String] {
    var out: [String] = []
    for i in 0..<max(expected.count, got.count) {
        let e = i < expected.count ? expected[i] : "(nothing)"
        let g = i < got.count ? got[i] : "(nothing)"
        if e != g { out.append("  step \(i): expected \(e)\n          got      \(g)") }
    }
    return out
}
