import CLinuxCalls
import Foundation
import Glibc
import Testing
import TestSupport

/// File contents through the mount: each scenario runs on a plain directory
/// and on the mount, and the records (return values, errno, stat, bytes)
/// must be equal. What a compiler, linker or archiver does to its outputs.
@Suite("POSIX: file data") struct PosixFileTests {
    let fixture: MountFixture
    init() throws { fixture = try MountFixture() }

    @Test func createOpenReadWrite() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "open f again with O_EXCL: EEXIST", "open missing: ENOENT", "open f/x: ENOTDIR",
            "open d for writing: EISDIR", "hole reads zeros: true", "read at end = 0",
        ]) { p in
            let fd = p.open("f", O_CREAT | O_EXCL | O_RDWR, 0o640)
            p.stat("f")
            p.open("f", O_CREAT | O_EXCL | O_WRONLY, label: "open f again with O_EXCL")
            p.open("missing", O_RDONLY, label: "open missing")
            p.open("f/x", O_CREAT | O_WRONLY, label: "open f/x")
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            p.open("d", O_WRONLY, label: "open d for writing")
            p.check("write", write(fd, "hello", 5), value: true)
            p.pwrite("tail at 100000", fd, Array("tail".utf8), at: 100_000)
            p.fstat("f", fd)
            var hole = [UInt8](repeating: 1, count: 4)
            Glibc.pread(fd, &hole, 4, 50_000)
            p.note("hole reads zeros: \(hole.allSatisfy { $0 == 0 })")
            var byte: UInt8 = 0
            p.check("read at end", Glibc.pread(fd, &byte, 1, 100_004), value: true)
            // A second descriptor sees the first one's writes at once.
            let other = p.open("f", O_RDONLY, label: "open f a second time")
            p.pread("second descriptor", other, from: 99_998)
            let append = p.open("f", O_WRONLY | O_APPEND, label: "open f O_APPEND")
            p.check("append", write(append, "!", 1), value: true)
            p.check("close append", close(append))
            p.pread("after append", other, from: 100_000)
            p.check("close other", close(other))
            p.check("close", close(fd))
            p.contents("f")
            p.stat("f")
        }
    }

    /// Data larger than one FUSE request, at an unaligned offset, read back
    /// in odd-sized pieces.
    @Test func largeUnalignedWriteReadsBackExactly() throws {
        var random = SeededRandom(seed: 7)
        let data = random.bytes(3 * 1024 * 1024 + 12_345)
        expectSameOnMountAndPlain(fixture, expecting: ["pieces equal the data: true"]) { p in
            let fd = p.open("big", O_CREAT | O_RDWR, 0o644)
            var written = 0
            while written < data.count {
                let n = data[written...].withUnsafeBytes {
                    Glibc.pwrite(fd, $0.baseAddress, min($0.count, 200_003), off_t(12_345 + written))
                }
                guard n > 0 else { p.check("pwrite", n); break }
                written += n
            }
            p.note("written \(written)")
            p.fstat("big", fd)
            var pieces: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 131_079)
            var offset: off_t = 12_345
            while true {
                let n = Glibc.pread(fd, &buffer, buffer.count, offset)
                if n <= 0 { break }
                pieces += buffer[0..<n]
                offset += off_t(n)
            }
            p.note("pieces equal the data: \(pieces == data)")
            p.check("close", close(fd))
            p.contents("big")
        }
    }

    @Test func truncateShrinksGrowsAndZeroFills() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "ftruncate read-only fd: EINVAL", "truncate d: EISDIR", "truncate -1: EINVAL", "truncate missing: ENOENT",
        ]) { p in
            let fd = p.open("f", O_CREAT | O_RDWR, 0o644)
            p.pwrite("data", fd, [UInt8](repeating: 0x61, count: 10_000), at: 0)
            p.check("ftruncate 100", ftruncate(fd, 100))
            p.fstat("after shrink", fd)
            p.check("ftruncate 70000", ftruncate(fd, 70_000))
            p.pread("after grow", fd)
            p.check("truncate by path 5", truncate(p.path("f"), 5))
            p.pread("after truncate by path", fd)
            p.check("close", close(fd))
            let readOnly = p.open("f", O_RDONLY)
            p.check("ftruncate read-only fd", ftruncate(readOnly, 0))
            p.check("close read-only", close(readOnly))
            let trunc = p.open("f", O_WRONLY | O_TRUNC, label: "open O_TRUNC")
            p.fstat("after O_TRUNC", trunc)
            p.check("close O_TRUNC", close(trunc))
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            p.check("truncate d", truncate(p.path("d"), 0))
            p.check("truncate -1", truncate(p.path("f"), -1))
            p.check("truncate missing", truncate(p.path("missing"), 0))
            p.contents("f")
        }
    }

    @Test func fallocateReservesAndPunchesHoles() throws {
        let keepSize: Int32 = 0x01, punchHole: Int32 = 0x02
        expectSameOnMountAndPlain(fixture, expecting: ["fallocate 1 MiB: ok", "punch hole: ok"]) { p in
            let fd = p.open("f", O_CREAT | O_RDWR, 0o644)
            p.check("fallocate 1 MiB", buildfs_fallocate(fd, 0, 0, 1 << 20))
            if let st = p.fstat("after fallocate", fd) { p.note("allocated >= 1 MiB: \(st.st_blocks * 512 >= 1 << 20)") }
            p.check("fallocate keep size", buildfs_fallocate(fd, keepSize, 1 << 20, 1 << 20))
            if let st = p.fstat("after keep size", fd) { p.note("allocated >= 2 MiB: \(st.st_blocks * 512 >= 2 << 20)") }
            p.pwrite("data", fd, [UInt8](repeating: 0x62, count: 65_536), at: 0)
            p.check("punch hole", buildfs_fallocate(fd, punchHole | keepSize, 4096, 8192))
            p.fstat("after punch", fd)
            p.pread("after punch", fd)
            p.check("close", close(fd))
        }
    }

    /// The file stays usable through its descriptor after unlink (what
    /// compilers and `ld` do with temporary files), and the name is free.
    @Test func unlinkedOpenFileStaysReadableAndWritable() throws {
        expectSameOnMountAndPlain(fixture, expecting: ["lstat f: ENOENT", "fstat unlinked: file mode=644 size=6 nlink=0 owner=0:0"]) { p in
            let fd = p.open("f", O_CREAT | O_RDWR, 0o644)
            p.pwrite("before", fd, Array("before".utf8), at: 0)
            p.check("unlink", unlink(p.path("f")))
            p.stat("f")
            p.list("")
            p.fstat("unlinked", fd)
            p.pread("unlinked", fd)
            p.pwrite("after", fd, Array("after".utf8), at: 6)
            p.pread("after write", fd)
            p.check("ftruncate", ftruncate(fd, 3))
            p.fstat("after ftruncate", fd)
            p.check("fsync", fsync(fd))
            // The name is free for a new file while the old one is open.
            let again = p.open("f", O_CREAT | O_EXCL | O_RDWR, 0o600, label: "create f again")
            p.pwrite("new file", again, Array("new".utf8), at: 0)
            p.pread("old file", fd)
            p.check("close old", close(fd))
            p.check("close new", close(again))
            p.contents("f")
            p.list("")
        }
    }

    @Test func fsyncFdatasyncAndDirectoryFsync() throws {
        expectSameOnMountAndPlain(fixture, expecting: ["fsync: ok", "fsync directory: ok"]) { p in
            let fd = p.open("f", O_CREAT | O_RDWR, 0o644)
            p.pwrite("data", fd, Array("data".utf8), at: 0)
            p.check("fsync", fsync(fd))
            p.check("fdatasync", fdatasync(fd))
            p.check("close", close(fd))
            let dir = p.open("", O_RDONLY | O_DIRECTORY, label: "open root directory")
            p.check("fsync directory", fsync(dir))
            p.check("fdatasync directory", fdatasync(dir))
            p.check("close directory", close(dir))
        }
    }

    /// POSIX record locks and flock, with the conflicting lock taken from a
    /// child process (locks between processes are what make(1)'s jobs and
    /// ccache rely on).
    @Test func fcntlAndFlockLocksConflictAcrossProcesses() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "child write lock while held: refused", "child write lock after release: granted",
            "child flock while held: refused", "child flock after release: granted",
        ]) { p in
            let fd = p.open("lockfile", O_CREAT | O_RDWR, 0o644)
            var lock = flock()
            lock.l_type = Int16(F_WRLCK)
            lock.l_whence = Int16(SEEK_SET)
            p.check("F_SETLK write lock", fcntl(fd, F_SETLK, &lock))
            p.note("child write lock while held: \(childTakesLock(p.path("lockfile"), "fcntl-write"))")
            p.note("child read lock while held: \(childTakesLock(p.path("lockfile"), "fcntl-read"))")
            lock.l_type = Int16(F_RDLCK)
            p.check("downgrade to read lock", fcntl(fd, F_SETLK, &lock))
            p.note("child read lock beside read lock: \(childTakesLock(p.path("lockfile"), "fcntl-read"))")
            lock.l_type = Int16(F_UNLCK)
            p.check("F_SETLK unlock", fcntl(fd, F_SETLK, &lock))
            p.note("child write lock after release: \(childTakesLock(p.path("lockfile"), "fcntl-write"))")

            p.check("flock LOCK_EX", lockFile(fd, LOCK_EX | LOCK_NB))
            p.note("child flock while held: \(childTakesLock(p.path("lockfile"), "flock"))")
            p.check("flock LOCK_UN", lockFile(fd, LOCK_UN))
            p.note("child flock after release: \(childTakesLock(p.path("lockfile"), "flock"))")
            p.check("close", close(fd))
        }
    }

    /// mmap for reading, and MAP_SHARED writes that reach the file (how gold
    /// and lld write their output).
    @Test func mmapReadAndSharedWritesReachTheFile() throws {
        var random = SeededRandom(seed: 11)
        let data = random.bytes(3 * 4096 + 100)
        expectSameOnMountAndPlain(fixture, expecting: ["mapped bytes equal the file: true", "shared write visible to read: true"]) { p in
            let fd = p.open("f", O_CREAT | O_RDWR, 0o644)
            p.pwrite("data", fd, data, at: 0)
            if let map = mapOrNote(p, "read map", fd, data.count, PROT_READ, MAP_SHARED) {
                let mapped = Array(UnsafeRawBufferPointer(start: map, count: data.count))
                p.note("mapped bytes equal the file: \(mapped == data)")
                p.check("munmap read map", munmap(map, data.count))
            }
            p.check("ftruncate 8192", ftruncate(fd, 8192))
            if let map = mapOrNote(p, "shared map", fd, 8192, PROT_READ | PROT_WRITE, MAP_SHARED) {
                let text = Array("written through mmap".utf8)
                for (i, byte) in text.enumerated() {
                    map.storeBytes(of: byte, toByteOffset: 5000 + i, as: UInt8.self)
                }
                p.check("msync", msync(map, 8192, MS_SYNC))
                let reader = p.open("f", O_RDONLY, label: "open reader")
                var seen = [UInt8](repeating: 0, count: text.count)
                Glibc.pread(reader, &seen, text.count, 5000)
                p.note("shared write visible to read: \(seen == text)")
                // A write after msync, seen only once unmapped.
                map.storeBytes(of: UInt8(ascii: "X"), toByteOffset: 8191, as: UInt8.self)
                p.check("munmap shared map", munmap(map, 8192))
                p.check("close reader", close(reader))
            }
            if let map = mapOrNote(p, "private map", fd, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE) {
                map.storeBytes(of: UInt8(ascii: "P"), toByteOffset: 0, as: UInt8.self)
                p.check("munmap private map", munmap(map, 8192))
            }
            p.check("close", close(fd))
            p.contents("f")
        }
    }
}

/// mmap, recording failure as errno.
func mapOrNote(_ p: Probe, _ label: String, _ fd: Int32, _ length: Int, _ protection: Int32,
               _ flags: Int32) -> UnsafeMutableRawPointer? {
    let map = mmap(nil, length, protection, flags, fd, 0)
    if map == MAP_FAILED || map == nil {
        p.note("mmap \(label): \(errnoName(errno))")
        return nil
    }
    p.note("mmap \(label): ok")
    return map
}

/// Whether another process gets a lock on `path` right now: `fcntl-write`,
/// `fcntl-read` (F_SETLK on the whole file) or `flock` (LOCK_EX|LOCK_NB).
/// perl is part of every Debian system, and struct flock on x86_64/arm64 is
/// short, short, (pad), off_t, off_t, pid_t, (pad).
func childTakesLock(_ path: String, _ kind: String) -> String {
    let result: RunResult
    switch kind {
    case "flock":
        result = Run.command(["flock", "--nonblock", "--exclusive", path, "true"], timeout: 20)
    default:
        let type = kind == "fcntl-write" ? "F_WRLCK" : "F_RDLCK"
        let mode = kind == "fcntl-write" ? "+<" : "<"
        result = Run.command(["perl", "-e", """
            use Fcntl;
            open(my $f, "\(mode)", $ARGV[0]) or exit 3;
            my $lock = pack("s s x4 q q l x4", \(type), SEEK_SET, 0, 0, 0);
            fcntl($f, F_SETLK, $lock) ? exit 0 : exit 1;
            """, path], timeout: 20)
    }
    switch result.status {
    case 0: return "granted"
    case 1: return "refused"
    default: return "error \(result.summary)"
    }
}

/// flock(2), under a name the `flock` struct does not shadow.
func lockFile(_ fd: Int32, _ operation: Int32) -> Int32 { flock(fd, operation) }
