import CLinuxCalls
import Foundation
import Glibc
import Testing
import TestSupport

/// Names through the mount: rename, links, directories, long names and
/// paths, special files. Same scenario on a plain directory and on the
/// mount, records compared.
@Suite("POSIX: names and directories") struct PosixNamespaceTests {
    let fixture: MountFixture
    init() throws { fixture = try MountFixture() }

    @Test func renameFilesAndDirectories() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "pread old target after rename over it: \"old\"", "rename dir over non-empty dir: ENOTEMPTY",
            "rename dir over file: ENOTDIR", "rename file over dir: EISDIR", "rename dir into itself: EINVAL",
            "rename missing: ENOENT",
        ]) { p in
            p.create("a", "a")
            p.check("rename a b", rename(p.path("a"), p.path("b")))
            p.stat("a")
            p.contents("b")
            // Over an existing file: the name now shows the new file; a
            // descriptor on the replaced one still reads the old bytes.
            p.create("target", "old")
            let old = p.open("target", O_RDONLY)
            p.check("rename b over target", rename(p.path("b"), p.path("target")))
            p.contents("target")
            p.pread("old target after rename over it", old)
            p.fstat("old target", old)
            p.check("close old", close(old))
            p.check("mkdir d1", mkdir(p.path("d1"), 0o755))
            p.check("mkdir d2", mkdir(p.path("d2"), 0o755))
            p.create("d1/inner", "inner")
            p.check("rename dir over empty dir", rename(p.path("d1"), p.path("d2")))
            p.stat("d2")
            p.contents("d2/inner")
            p.check("mkdir d3", mkdir(p.path("d3"), 0o755))
            p.check("rename dir over non-empty dir", rename(p.path("d3"), p.path("d2")))
            p.check("rename dir over file", rename(p.path("d3"), p.path("target")))
            p.check("rename file over dir", rename(p.path("target"), p.path("d3")))
            p.check("rename dir into itself", rename(p.path("d2"), p.path("d2/sub")))
            p.check("rename missing", rename(p.path("missing"), p.path("x")))
            p.check("rename to same name", rename(p.path("target"), p.path("target")))
            p.check("rename across dirs", rename(p.path("target"), p.path("d2/moved")))
            p.check("rename dir across dirs", rename(p.path("d3"), p.path("d2/d3")))
            // Two names of one file: rename is a no-op, both stay.
            p.check("link", link(p.path("d2/moved"), p.path("d2/other")))
            p.check("rename onto own hard link", rename(p.path("d2/moved"), p.path("d2/other")))
            p.list("d2")
            p.stat("d2/moved")
            p.stat("d2")
            p.list("")
        }
    }

    @Test func renameat2NoReplaceAndExchange() throws {
        let noReplace = UInt32(BUILDFS_RENAME_NOREPLACE), exchange = UInt32(BUILDFS_RENAME_EXCHANGE)
        expectSameOnMountAndPlain(fixture, expecting: [
            "NOREPLACE onto existing: EEXIST", "NOREPLACE onto free name: ok", "EXCHANGE file and dir: ok",
            "EXCHANGE with missing: ENOENT",
        ]) { p in
            p.create("a", "a")
            p.create("b", "b")
            p.check("NOREPLACE onto existing", buildfs_renameat2(AT_FDCWD, p.path("a"), AT_FDCWD, p.path("b"), noReplace))
            p.contents("a")
            p.contents("b")
            p.check("NOREPLACE onto free name", buildfs_renameat2(AT_FDCWD, p.path("a"), AT_FDCWD, p.path("c"), noReplace))
            p.stat("a")
            p.contents("c")
            p.check("mkdir d", mkdir(p.path("d"), 0o700))
            p.create("d/inside", "inside")
            p.check("EXCHANGE file and dir", buildfs_renameat2(AT_FDCWD, p.path("c"), AT_FDCWD, p.path("d"), exchange))
            p.stat("c")
            p.contents("c/inside")
            p.contents("d")
            p.check("EXCHANGE two files", buildfs_renameat2(AT_FDCWD, p.path("b"), AT_FDCWD, p.path("d"), exchange))
            p.contents("b")
            p.contents("d")
            p.check("EXCHANGE with missing", buildfs_renameat2(AT_FDCWD, p.path("b"), AT_FDCWD, p.path("missing"), exchange))
            p.list("")
        }
    }

    @Test func mkdirRmdirAndErrors() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "mkdir d again: EEXIST", "rmdir non-empty: ENOTEMPTY", "rmdir file: ENOTDIR", "unlink dir: EISDIR",
            "rmdir missing: ENOENT", "mkdir in missing parent: ENOENT", "lstat d: dir mode=750 nlink=3 owner=0:0",
        ]) { p in
            p.check("mkdir d", mkdir(p.path("d"), 0o750))
            p.check("mkdir d again", mkdir(p.path("d"), 0o755))
            p.check("mkdir d/sub", mkdir(p.path("d/sub"), 0o755))
            p.stat("d")  // nlink counts the subdirectory
            p.create("d/sub/file", "")
            p.check("rmdir non-empty", rmdir(p.path("d/sub")))
            p.check("rmdir file", rmdir(p.path("d/sub/file")))
            p.check("unlink dir", unlink(p.path("d/sub")))
            p.check("rmdir missing", rmdir(p.path("missing")))
            p.check("mkdir in missing parent", mkdir(p.path("missing/x"), 0o755))
            p.check("unlink file", unlink(p.path("d/sub/file")))
            p.check("rmdir now empty", rmdir(p.path("d/sub")))
            p.stat("d")
            p.stat("d/sub")
            p.list("d")
        }
    }

    /// Every one of 5000 entries listed once with the right d_type, before
    /// and after removing half (readdir is paged: continuation must work).
    @Test func readdirOfALargeDirectory() throws {
        expectSameOnMountAndPlain(fixture, expecting: ["5000 entries listed once: true", "2500 entries after removal: true"]) { p in
            p.check("mkdir big", mkdir(p.path("big"), 0o755))
            let names = (0..<5000).map { "entry-\($0)-" + String(repeating: "n", count: $0 % 50) }
            for name in names where Glibc.close(Glibc.open(p.path("big/" + name), O_CREAT | O_WRONLY, 0o644)) != 0 {
                p.note("create \(name): \(errnoName(errno))")
            }
            p.check("mkdir big/sub", mkdir(p.path("big/sub"), 0o755))
            p.check("symlink big/link", symlink("entry-0-", p.path("big/link")))
            let entries = directoryEntries(p.path("big")) ?? []
            let listed = entries.map(\.name).filter { $0 != "." && $0 != ".." }
            p.note("5000 entries listed once: \(listed.count == 5002 && Set(listed) == Set(names + ["sub", "link"]))")
            p.noteSetDifference("listing", got: listed, expected: names + ["sub", "link"])
            p.note("dot entries: \(entries.filter { $0.name == "." || $0.name == ".." }.count)")
            let types = Dictionary(entries.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
            p.note("d_type file/dir/link: \(types["entry-7-nnnnnnn"] ?? 0)/\(types["sub"] ?? 0)/\(types["link"] ?? 0)")
            for name in names.enumerated().filter({ $0.offset % 2 == 0 }).map(\.element)
                where unlink(p.path("big/" + name)) != 0 {
                p.note("unlink \(name): \(errnoName(errno))")
            }
            let after = Set(p.list("big", record: false) ?? [])
            let expected = Set(names.enumerated().filter { $0.offset % 2 == 1 }.map(\.element) + ["sub", "link"])
            p.note("2500 entries after removal: \(after == expected)")
            p.noteSetDifference("listing after removal", got: Array(after), expected: Array(expected))
        }
    }

    /// A listing read in pieces resumes where it was: seekdir back to a
    /// telldir position gives the same entries again, and deleting what was
    /// listed so far (as rm -rf does) neither skips nor repeats the rest.
    /// The deletions make the kernel drop its cached listing, so the rest
    /// comes from the daemon at the saved offset.
    @Test func listingResumesAtItsOffsetWhileEntriesGo() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "seekdir gives the same 500 entries: true", "every entry listed once: true",
        ]) { p in
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            let names = (0..<3000).map { "file-\($0)-" + String(repeating: "x", count: $0 % 40) }
            for name in names where Glibc.close(Glibc.open(p.path("d/" + name), O_CREAT | O_WRONLY, 0o644)) != 0 {
                p.note("create \(name): \(errnoName(errno))")
            }
            guard let dir = opendir(p.path("d")) else { return p.note("opendir: \(errnoName(errno))") }
            defer { closedir(dir) }
            func next(_ count: Int) -> [String] {
                var names: [String] = []
                while names.count < count, let entry = readdir(dir) {
                    var raw = entry.pointee.d_name
                    let name = withUnsafePointer(to: &raw) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
                    if name != "." && name != ".." { names.append(name) }
                }
                return names
            }
            var seen = next(1000)
            let position = telldir(dir)
            let piece = next(500)
            seekdir(dir, position)
            let again = next(500)
            p.note("seekdir gives the same 500 entries: \(piece.count == 500 && piece == again)")
            seen += piece
            for name in seen where unlink(p.path("d/" + name)) != 0 {
                p.note("unlink \(name): \(errnoName(errno))")
            }
            let rest = next(Int.max)
            let all = seen + rest
            p.note("every entry listed once: \(all.count == names.count && Set(all) == Set(names))")
            p.noteSetDifference("listing", got: all, expected: names)
        }
    }

    @Test func symlinksAndReadlink() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "readlink link = target with spaces/../file", "stat dangling: ENOENT", "open link O_NOFOLLOW: ELOOP",
            "symlink over existing: EEXIST", "readlink of a file: EINVAL",
        ]) { p in
            p.check("mkdir target with spaces", mkdir(p.path("target with spaces"), 0o755))
            p.create("file", "through the link")
            p.check("symlink", symlink("target with spaces/../file", p.path("link")))
            p.note("readlink link = \(readLink(p.path("link")) ?? errnoName(errno))")
            p.stat("link")
            p.stat("link", follow: true)
            p.contents("link")
            p.check("symlink dangling", symlink("nowhere/at all", p.path("dangling")))
            p.stat("dangling")
            p.stat("dangling", follow: true)
            p.open("link", O_RDONLY | O_NOFOLLOW, label: "open link O_NOFOLLOW")
            p.check("symlink over existing", symlink("x", p.path("file")))
            p.note("readlink of a file: \(readLink(p.path("file")) ?? errnoName(errno))")
            let long = String(repeating: "x/", count: 1500)  // 3000-byte target
            p.check("symlink long target", symlink(long, p.path("long")))
            p.note("long target round trip: \(readLink(p.path("long")) == long)")
            p.check("symlink to dir", symlink("target with spaces", p.path("dirlink")))
            p.create("dirlink/via link", "x")
            p.list("target with spaces")
            p.check("unlink link", unlink(p.path("link")))
            p.stat("file")
        }
    }

    @Test func hardLinksShareOneInode() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "same inode number through both names: true", "link to a directory: EPERM", "link onto existing: EEXIST",
        ]) { p in
            p.create("a", "shared")
            p.check("mkdir d", mkdir(p.path("d"), 0o755))
            p.check("link a d/b", link(p.path("a"), p.path("d/b")))
            let a = p.stat("a"), b = p.stat("d/b")
            p.note("same inode number through both names: \(a != nil && a?.st_ino == b?.st_ino)")
            let fd = p.open("d/b", O_WRONLY | O_APPEND)
            p.check("append via b", write(fd, "+more", 5), value: true)
            p.check("close", close(fd))
            p.contents("a")
            p.check("chmod via a", chmod(p.path("a"), 0o600))
            p.stat("d/b")
            p.check("link to a directory", link(p.path("d"), p.path("dlink")))
            p.check("link onto existing", link(p.path("a"), p.path("d/b")))
            p.check("link missing", link(p.path("missing"), p.path("x")))
            p.check("unlink a", unlink(p.path("a")))
            p.stat("d/b")
            p.check("link back", link(p.path("d/b"), p.path("a")))
            p.stat("a")
        }
    }

    /// NAME_MAX is 255 bytes (not characters); one more is ENAMETOOLONG for
    /// every call that takes a name.
    @Test func nameOf255BytesWorksAnd256Fails() throws {
        let ascii255 = String(repeating: "a", count: 255)
        let utf8255 = String(repeating: "é", count: 127) + "z"  // 2 * 127 + 1 bytes
        let name256 = String(repeating: "b", count: 256)
        expectSameOnMountAndPlain(fixture, expecting: [
            "create 255 ascii: ok", "create 255 utf-8 bytes: ok", "create 256: ENAMETOOLONG", "lstat 256: ENAMETOOLONG",
        ]) { p in
            p.check("close", close(p.open(ascii255, O_CREAT | O_WRONLY, 0o644, label: "create 255 ascii")))
            p.check("close", close(p.open(utf8255, O_CREAT | O_WRONLY, 0o644, label: "create 255 utf-8 bytes")))
            p.check("mkdir 255", mkdir(p.path("d" + String(repeating: "d", count: 254)), 0o755))
            p.check("symlink named 255", symlink("t", p.path(String(repeating: "s", count: 255))))
            p.check("rename to 255", rename(p.path(ascii255), p.path(String(repeating: "r", count: 255))))
            p.open(name256, O_CREAT | O_WRONLY, 0o644, label: "create 256")
            p.check("mkdir 256", mkdir(p.path(name256), 0o755))
            var st = stat()
            p.check("lstat 256", lstat(p.path(name256), &st))
            p.check("rename to 256", rename(p.path(utf8255), p.path(name256)))
            p.list("")
        }
    }

    /// A tree whose absolute paths get within a few bytes of PATH_MAX (4096),
    /// built with mkdirat/openat one level at a time; the full path still
    /// works with open(2), one byte more gives ENAMETOOLONG, and openat
    /// relative to a deep directory works past PATH_MAX.
    @Test func deepPathCloseToPathMax() throws {
        expectSameOnMountAndPlain(fixture, expecting: [
            "deep file by absolute path: ok", "absolute path over PATH_MAX: ENAMETOOLONG", "openat past PATH_MAX: ok",
            "removed all levels: true",
        ]) { p in
            let component = String(repeating: "c", count: 200)
            var levels: [Int32] = [Glibc.open(p.root, O_RDONLY | O_DIRECTORY)]
            var absolute = p.root
            // Leave room for "/" + a 10-byte file name + the NUL.
            while absolute.utf8.count + 1 + component.utf8.count <= 4095 - 11 {
                guard mkdirat(levels.last!, component, 0o755) == 0 else {
                    p.note("mkdirat at depth \(levels.count): \(errnoName(errno))")
                    break
                }
                let next = openat(levels.last!, component, O_RDONLY | O_DIRECTORY)
                guard next >= 0 else {
                    p.note("openat at depth \(levels.count): \(errnoName(errno))")
                    break
                }
                levels.append(next)
                absolute += "/" + component
            }
            let filler = 4095 - 1 - absolute.utf8.count  // a name that makes the path exactly 4095 bytes
            let name = String(repeating: "f", count: filler)
            let file = absolute + "/" + name
            let fd = Glibc.open(file, O_CREAT | O_RDWR, 0o644)
            p.check("deep file by absolute path", fd)
            p.pwrite("deep", fd, Array("deep".utf8), at: 0)
            p.check("close", close(fd))
            var st = stat()
            p.check("stat deep file", lstat(file, &st))
            let tooLong = Glibc.open(absolute + "/" + name + "g", O_CREAT | O_RDWR, 0o644)
            p.check("absolute path over PATH_MAX", tooLong)
            if tooLong >= 0 { close(tooLong) }
            // Relative to the deepest directory, the path length is no limit.
            p.check("mkdirat past PATH_MAX", mkdirat(levels.last!, "beyond", 0o755))
            let beyond = openat(levels.last!, "beyond/" + String(repeating: "x", count: 100), O_CREAT | O_RDWR, 0o644)
            p.check("openat past PATH_MAX", beyond)
            p.pwrite("beyond", beyond, Array("beyond".utf8), at: 0)
            p.pread("beyond", beyond)
            p.check("close beyond", close(beyond))
            p.note("depth \(levels.count - 1) (same on both: the roots have equal lengths)")
            // Remove it level by level (rm -r would hit PATH_MAX).
            var removed = unlinkat(levels.last!, name, 0) == 0
                && unlinkat(levels.last!, "beyond/" + String(repeating: "x", count: 100), 0) == 0
                && unlinkat(levels.last!, "beyond", AT_REMOVEDIR) == 0
            for depth in stride(from: levels.count - 1, to: 0, by: -1) {
                close(levels[depth])
                removed = removed && unlinkat(levels[depth - 1], component, AT_REMOVEDIR) == 0
            }
            close(levels[0])
            p.note("removed all levels: \(removed)")
            p.list("")
        }
    }

    @Test func fifoWorksOnTheMount() throws {
        expectSameOnMountAndPlain(fixture, expecting: ["lstat pipe: fifo mode=640 size=0 nlink=1 owner=0:0", "mkfifo again: EEXIST"]) { p in
            p.check("mkfifo", mkfifo(p.path("pipe"), 0o640))
            p.stat("pipe")
            p.check("mkfifo again", mkfifo(p.path("pipe"), 0o640))
            let fd = p.open("pipe", O_RDWR | O_NONBLOCK)
            p.check("write to fifo", write(fd, "abc", 3), value: true)
            var buffer = [UInt8](repeating: 0, count: 8)
            let n = read(fd, &buffer, 8)
            p.check("read from fifo", n, value: true)
            p.note("fifo bytes: \(describeBytes(Array(buffer.prefix(max(0, n)))))")
            p.check("close", close(fd))
            p.list("")
        }
    }

    @Test(.enabled(if: getuid() == 0, "mknod of a device needs root"))
    func mknodCharacterDeviceAsRoot() throws {
        let devNull: dev_t = (1 << 8) | 3  // makedev(1, 3)
        expectSameOnMountAndPlain(fixture, expecting: ["mknod char 1:3: ok", "lstat null: chardev mode=644 size=0 nlink=1 owner=0:0 rdev=259"]) { p in
            p.check("mknod char 1:3", mknod(p.path("null"), S_IFCHR | 0o666, devNull))  // umask 022 applies
            p.stat("null", [.standard, .rdev])
            p.check("mknod regular", mknod(p.path("regular"), S_IFREG | 0o600, 0))
            p.stat("regular")
            p.check("mknod existing", mknod(p.path("null"), S_IFCHR | 0o666, devNull))
            p.check("unlink device", unlink(p.path("null")))
            p.list("")
        }
    }
}

/// readlink(2) as a String, nil (errno set) on failure.
func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 8192)
    let n = readlink(path, &buffer, buffer.count)
    guard n >= 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
