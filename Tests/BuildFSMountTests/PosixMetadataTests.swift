import CLinuxCalls
import Foundation
import Glibc
import Testing
import TestSupport

/// Metadata through the mount: modes, owners, timestamps to the nanosecond
/// (make and ninja decide from them), xattrs, statfs. Same scenario on a
/// plain directory and on the mount, records compared.
@Suite("POSIX: metadata") struct PosixMetadataTests {
    let fixture: MountFixture
    init() throws { fixture = try MountFixture() }

    @Test func chmodIncludingSpecialBits() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "lstat f: file mode=4755 size=1 nlink=1 owner=0:0", "lstat d: dir mode=1777 nlink=2 owner=0:0", "chmod missing: ENOENT",
        ]) { p in
            p.create("f", "x")
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            for mode: mode_t in [0o4755, 0o2750, 0o000, 0o644] {
                p.check("chmod f \(String(mode, radix: 8))", chmod(p.path("f"), mode))
                p.stat("f")
            }
            p.check("chmod f 4755", chmod(p.path("f"), 0o4755))
            p.stat("f")
            p.check("chmod d 1777", chmod(p.path("d"), 0o1777))
            p.stat("d")
            let fd = p.open("f", O_RDONLY)
            p.check("fchmod 0700", fchmod(fd, 0o700))
            p.fstat("f", fd)
            p.check("close", close(fd))
            p.check("chmod missing", chmod(p.path("missing"), 0o644))
            p.check("symlink", symlink("f", p.path("link")))
            p.check("chmod through symlink", chmod(p.path("link"), 0o640))
            p.stat("f")
            p.stat("link")
        }
    }

    @Test(.enabled(if: getuid() == 0, "chown needs root"))
    func chownFilesAndSymlinks() throws {
        let keep = uid_t(bitPattern: -1)
        expectSameOnMountAndPlain(fixture, expecting: [
            "lstat f: file mode=644 size=1 nlink=1 owner=1000:1001", "lstat link: symlink mode=777 size=1 nlink=1 owner=1002:1003",
            "lstat s: file mode=755 size=1 nlink=1 owner=65534:65534",
        ]) { p in
            p.create("f", "x")
            p.check("chown f 1000:1001", chown(p.path("f"), 1000, 1001))
            p.stat("f")
            p.check("symlink", symlink("f", p.path("link")))
            p.check("lchown link 1002:1003", lchown(p.path("link"), 1002, 1003))
            p.stat("link")
            p.stat("f")
            p.check("chown keeping both", chown(p.path("f"), keep, keep))
            p.check("chown keeping uid", chown(p.path("f"), keep, 0))
            p.stat("f")
            // chown of a setuid file clears the setuid bit.
            p.create("s", "x")
            p.check("chmod s 4755", chmod(p.path("s"), 0o4755))
            p.check("chown s 65534:65534", chown(p.path("s"), 65534, 65534))
            p.stat("s")
            let fd = p.open("f", O_RDONLY)
            p.check("fchown 0:0", fchown(fd, 0, 0))
            p.fstat("f", fd)
            p.check("close", close(fd))
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            p.check("chown d 1000:1000", chown(p.path("d"), 1000, 1000))
            p.stat("d")
        }
    }

    /// utimensat with nanoseconds, UTIME_OMIT for either time, times before
    /// 1970, symlinks themselves, and an mtime set while a written file is
    /// still open that must survive close (a writeback cache flushing late
    /// would move it, and make would then rebuild for nothing).
    @Test func timestampsToTheNanosecond() throws {
        let omit = timespec(tv_sec: 0, tv_nsec: Int(BUILDFS_UTIME_OMIT))
        let now = timespec(tv_sec: 0, tv_nsec: Int(BUILDFS_UTIME_NOW))
        let t1 = timespec(tv_sec: 1_000_000_000, tv_nsec: 123_456_789)
        let t2 = timespec(tv_sec: 1_500_000_000, tv_nsec: 987_654_321)
        let t3 = timespec(tv_sec: -100_000, tv_nsec: 5)
        let t4 = timespec(tv_sec: 1_234_567_890, tv_nsec: 999_999_999)
        let exact = Probe.Fields.exactTimes
        expectSameOnMountAndPlain(fixture, expecting: [
            "lstat f: file mode=644 size=1 nlink=1 owner=0:0 mtime=1500000000.987654321 atime=1000000000.123456789",
            "lstat f: file mode=644 size=1 nlink=1 owner=0:0 mtime=1500000000.987654321 atime=1234567890.999999999",
            "lstat written: file mode=644 size=1048576 nlink=1 owner=0:0 mtime=1234567890.999999999 atime=1000000000.123456789",
        ]) { p in
            func set(_ label: String, _ relative: String, _ atime: timespec, _ mtime: timespec, _ flags: Int32 = 0) {
                var times = [atime, mtime]
                p.check(label, utimensat(AT_FDCWD, p.path(relative), &times, flags))
            }
            p.create("f", "x")
            set("utimensat f", "f", t1, t2)
            p.stat("f", exact)
            set("utimensat omit mtime", "f", t4, omit)
            p.stat("f", exact)
            set("utimensat omit atime", "f", omit, t3)
            p.stat("f", exact)
            set("utimensat now", "f", omit, now)
            if let st = p.stat("f", [.kind]) {
                p.note("mtime now is recent: \(abs(time(nil) - st.st_mtim.tv_sec) < 60)")
            }
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            set("utimensat dir", "d", t1, t2)
            p.stat("d", exact)
            p.check("symlink", symlink("f", p.path("link")))
            set("utimensat f", "f", t1, t2)
            set("utimensat symlink itself", "link", t3, t4, AT_SYMLINK_NOFOLLOW)
            p.stat("link", [.kind, .mtime])
            p.stat("f", exact)
            // Written through a descriptor, then times set, then closed.
            let fd = p.open("written", O_CREAT | O_WRONLY, 0o644)
            p.pwrite("1 MiB", fd, [UInt8](repeating: 7, count: 1 << 20), at: 0)
            var times = [t1, t4]
            p.check("futimens while open", futimens(fd, &times))
            p.check("close", close(fd))
            p.stat("written", exact)
            let fd2 = p.open("written", O_WRONLY)
            p.pwrite("again", fd2, [1, 2, 3], at: 10)
            set("utimensat by path while open", "written", t1, t4)
            p.check("close", close(fd2))
            p.stat("written", exact)
            // Creating an entry moves the directory's mtime; setting it back sticks.
            set("utimensat d", "d", t1, t2)
            p.create("d/new", "")
            if let st = p.stat("d", [.kind]) { p.note("d mtime moved by create: \(st.st_mtim.tv_sec != t2.tv_sec)") }
        }
    }

    @Test func extendedAttributes() throws {
        let create: Int32 = 1, replace: Int32 = 2  // XATTR_CREATE, XATTR_REPLACE
        let binary = (0..<4000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        expectSameOnMountAndPlain(fixture, expecting: [
            "getxattr user.test = \"value\"", "XATTR_CREATE on existing: EEXIST", "XATTR_REPLACE on missing: ENODATA",
            "getxattr into small buffer: ERANGE", "getxattr user.test after remove: ENODATA",
        ]) { p in
            func set(_ label: String, _ relative: String, _ name: String, _ value: [UInt8], _ flags: Int32 = 0) {
                p.check(label, value.withUnsafeBytes { setxattr(p.path(relative), name, $0.baseAddress, $0.count, flags) })
            }
            func get(_ relative: String, _ name: String) {
                let size = getxattr(p.path(relative), name, nil, 0)
                guard size >= 0 else { return p.note("getxattr \(name) size: \(errnoName(errno))") }
                var value = [UInt8](repeating: 0, count: size)
                let n = getxattr(p.path(relative), name, &value, size)
                p.note("getxattr \(name) = \(n < 0 ? errnoName(errno) : describeBytes(Array(value.prefix(n))))")
            }
            func list(_ relative: String) {
                let size = listxattr(p.path(relative), nil, 0)
                guard size >= 0 else { return p.note("listxattr: \(errnoName(errno))") }
                var names = [CChar](repeating: 0, count: size)
                let n = listxattr(p.path(relative), &names, size)
                let all = names.prefix(max(0, n)).split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
                p.note("listxattr \(relative) (user.*): \(all.filter { $0.hasPrefix("user.") }.sorted())")
            }
            p.create("f", "x")
            set("setxattr user.test", "f", "user.test", Array("value".utf8))
            get("f", "user.test")
            set("setxattr user.binary", "f", "user.binary", binary)
            get("f", "user.binary")
            set("setxattr user.empty", "f", "user.empty", [])
            get("f", "user.empty")
            list("f")
            set("XATTR_CREATE on existing", "f", "user.test", Array("other".utf8), create)
            set("XATTR_REPLACE on missing", "f", "user.missing", Array("other".utf8), replace)
            set("XATTR_REPLACE on existing", "f", "user.test", Array("replaced".utf8), replace)
            get("f", "user.test")
            var small = [UInt8](repeating: 0, count: 2)
            p.check("getxattr into small buffer", getxattr(p.path("f"), "user.test", &small, 2))
            get("f", "user.missing")
            p.check("removexattr user.test", removexattr(p.path("f"), "user.test"))
            p.check("getxattr user.test after remove", getxattr(p.path("f"), "user.test", nil, 0))
            p.check("removexattr missing", removexattr(p.path("f"), "user.test"))
            list("f")
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            set("setxattr on dir", "d", "user.dir", Array("d".utf8))
            get("d", "user.dir")
            // Through a descriptor.
            let fd = p.open("f", O_RDONLY)
            p.check("fsetxattr", Array("fd".utf8).withUnsafeBytes { fsetxattr(fd, "user.fd", $0.baseAddress, $0.count, 0) })
            p.check("close", close(fd))
            get("f", "user.fd")
            // Hard links share xattrs; a rename keeps them.
            p.check("link", link(p.path("f"), p.path("g")))
            p.check("rename", rename(p.path("f"), p.path("h")))
            get("g", "user.fd")
            list("h")
        }
    }

    /// A security label a file does not have is "not supported", not "no
    /// data": FUSE caches no xattrs, and coreutils stops probing a device
    /// for SELinux labels only on the former (one request per file of
    /// `ls -l` otherwise). Labels a file has are returned as they are, and
    /// other namespaces keep ENODATA (ACLs and user attributes work).
    @Test(.enabled(if: MountKind.current == .buildfs && getuid() == 0, "buildfs, as root (security.* needs CAP_SYS_ADMIN)"))
    func missingSecurityLabelsAreNotSupportedAndPresentOnesAreReturned() throws {
        let file = fixture.mnt + "/labelled", other = fixture.mnt + "/plain"
        for path in [file, other] { #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8))) }
        func get(_ path: String, _ name: String) -> (String?, Int32) {
            var value = [UInt8](repeating: 0, count: 64)
            let n = getxattr(path, name, &value, value.count)
            return n < 0 ? (nil, errno) : (String(decoding: value.prefix(n), as: UTF8.self), 0)
        }
        #expect(get(other, "security.selinux").1 == EOPNOTSUPP)
        #expect(get(other, "security.capability").1 == EOPNOTSUPP)
        #expect(get(other, "user.missing").1 == ENODATA)
        #expect(get(other, "system.posix_acl_access").1 == ENODATA)
        let label = Array("system_u:object_r:test_t".utf8)
        #expect(label.withUnsafeBytes { setxattr(file, "security.buildfs-test", $0.baseAddress, $0.count, 0) } == 0,
                "setxattr: \(String(cString: strerror(errno)))")
        #expect(get(file, "security.buildfs-test").0 == "system_u:object_r:test_t")
        #expect(get(file, "security.buildfs-test").0 == get(fixture.upper + "/labelled", "security.buildfs-test").0)
        // `ls -l` of many unlabelled files lists them all without an error.
        for i in 0..<50 { FileManager.default.createFile(atPath: fixture.mnt + "/f\(i)", contents: nil) }
        let ls = try Shell.run(["ls", "-l", fixture.mnt])
        #expect(ls.succeeded && ls.stderr.isEmpty && ls.stdout.split(separator: "\n").count == 53, "\(ls.summary)")
    }

    /// df on the mount reports the upper directory's file system.
    @Test func statfsReportsTheUpperFileSystem() throws {
        let lines = expectSameOnMountAndPlain(fixture, expecting: ["statvfs: ok", "name max = 255"]) { p in
            var info = statvfs()
            p.check("statvfs", statvfs(p.root, &info))
            p.note("name max = \(info.f_namemax)")
            p.note("total bytes = \(UInt64(info.f_blocks) * UInt64(info.f_frsize))")
            p.note("has free space: \(info.f_bavail > 0)")
            let fd = p.open("", O_RDONLY | O_DIRECTORY, label: "open root")
            var fdInfo = statvfs()
            p.check("fstatvfs", fstatvfs(fd, &fdInfo))
            p.check("close", close(fd))
        }
        #expect(lines.contains { $0.hasPrefix("total bytes = ") && $0 != "total bytes = 0" })
    }

    /// stat shows a FUSE request's worth as the preferred I/O size: stdio
    /// sizes its buffers by it, and every write() through the mount is a
    /// round trip (ar and ld writing a library made half as many).
    @Test(.enabled(if: MountKind.current == .buildfs, "buildfs's own attribute"))
    func preferredIOSizeIsOneRequest() throws {
        let path = fixture.mnt + "/f"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
        var st = stat()
        #expect(lstat(path, &st) == 0)
        #expect(st.st_blksize == 128 << 10)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        #expect(fstat(fd, &st) == 0)
        #expect(st.st_blksize == 128 << 10)
    }
}
