import Glibc

/// A file descriptor that is closed when the last reference goes away.
/// `path` is kept only to name the file in error messages.
public final class FileDescriptor: @unchecked Sendable {
    public let raw: Int32
    public let path: String

    public init(raw: Int32, path: String) {
        self.raw = raw
        self.path = path
    }

    deinit { close(raw) }

    /// Opens `path` (absolute or relative to the working directory).
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemCallError("open", path) }
        return FileDescriptor(raw: fd, path: path)
    }

    /// Opens `name` inside this directory, never following a symlink at `name`
    /// unless `flags` says otherwise.
    public func openAt(_ name: [UInt8], _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let childPath = path + "/" + String(decoding: name, as: UTF8.self)
        let fd = withCString(name) { Glibc.openat(raw, $0, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemCallError("open", childPath) }
        return FileDescriptor(raw: fd, path: childPath)
    }

    public func stat() throws -> Glibc.stat {
        var st = Glibc.stat()
        guard fstat(raw, &st) == 0 else { throw SystemCallError("stat", path) }
        return st
    }

    /// lstat of an entry of this directory.
    public func statAt(_ name: [UInt8]) throws -> Glibc.stat {
        var st = Glibc.stat()
        let rc = withCString(name) { fstatat(raw, $0, &st, AT_SYMLINK_NOFOLLOW) }
        guard rc == 0 else { throw SystemCallError("stat", childPath(name)) }
        return st
    }

    public func childPath(_ name: [UInt8]) -> String {
        path + "/" + String(decoding: name, as: UTF8.self)
    }

    /// Reads until `buffer` is full or the file ends; returns the byte count.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try sys("read", path) { Glibc.read(raw, buffer.baseAddress! + done, buffer.count - done) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads the whole file from its current offset.
    public func readAll(limit: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try block.withUnsafeMutableBytes { try readFully(into: $0) }
            result.append(contentsOf: block[0..<n])
            if result.count > limit {
                throw BuildFSError.badTarget(path: path, reason: "file is larger than \(limit) bytes")
            }
            if n < block.count { return result }
        }
    }

    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = try sys("write", path) { Glibc.write(raw, bytes.baseAddress! + done, bytes.count - done) }
            done += n
        }
    }

    public func sync() throws {
        guard fsync(raw) == 0 else { throw SystemCallError("fsync", path) }
    }

    /// Names in this directory, without "." and "..", in no particular order;
    /// with `onlyDirectories`, those readdir says are directories.
    public func directoryEntries(onlyDirectories: Bool = false) throws -> [[UInt8]] {
        let dupFD = dup(raw)
        guard dupFD >= 0, let dir = fdopendir(dupFD) else {
            throw SystemCallError("open directory", path)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw SystemCallError("read directory", path) }
                return names
            }
            if onlyDirectories && entry.pointee.d_type != UInt8(DT_DIR) { continue }
            let name = entryName(entry)
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
    }
}

/// Replaces `path` with `bytes` at once: a reader sees the old file or the
/// new one, never part of one. The bytes go to a hidden file beside it
/// (".NAME-UNIQUE": the same directory, so the rename stays on one file
/// system), which is renamed over it, or removed if anything fails.
public func replaceFile(_ path: String, with bytes: [UInt8], durable: Bool, mode: mode_t = 0o644) throws {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    let temp = directory + "/." + name + "-" + LocalStore.uniqueName()
    try LocalStore.writeFile(temp, bytes, durable: durable, mode: mode)
    guard rename(temp, path) == 0 else {
        let err = errno
        unlink(temp)
        throw SystemCallError("rename", path, code: err)
    }
}

/// The name of a directory entry readdir(3) returned, copied once: as
/// bytes (UInt8) or as a C string's characters (CChar), with its NUL when
/// `terminated` (the daemon hands names to libfuse that way).
@inlinable
public func entryName<Byte: FixedWidthInteger>(_ entry: UnsafePointer<dirent>, as _: Byte.Type = UInt8.self,
                                               terminated: Bool = false) -> [Byte] {
    withUnsafeBytes(of: entry.pointee.d_name) { raw in
        let length = raw.firstIndex(of: 0) ?? raw.count
        let bytes = raw.bindMemory(to: Byte.self)
        return Array(bytes[0..<min(length + (terminated ? 1 : 0), bytes.count)])
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
@inline(__always)
public func withCString<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    var terminated = bytes
    terminated.append(0)
    return try terminated.withUnsafeBufferPointer { buffer in
        try buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { try body($0) }
    }
}

extension stat {
    public var isRegularFile: Bool { (st_mode & S_IFMT) == S_IFREG }
    public var isDirectory: Bool { (st_mode & S_IFMT) == S_IFDIR }
    public var isSymlink: Bool { (st_mode & S_IFMT) == S_IFLNK }
}

extension FileDescriptor {
    /// pread until `buffer` is full or the file ends; returns the byte count.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try sys("read", path) { pread(raw, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done)) }
            if n == 0 { break }
            done += n
        }
        return done
    }
}
