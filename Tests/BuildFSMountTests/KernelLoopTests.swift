import BuildFSCore
@testable import BuildFSMount
import CFuseKernel
import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// The own request loop against the real kernel: a tiny read-only file
/// system served through KernelMount + KernelSession, used by separate
/// processes (cat, ls, stat), then unmounted.
@Suite("Kernel loop")
struct KernelLoopTests {
    @Test func servesATinyFileSystemToOtherProcessesAndEndsOnUnmount() throws {
        let directory = TemporaryDirectory("buildfs-kernel-loop")
        let mountpoint = directory.sub("mnt")
        mkdir(mountpoint, 0o755)
        // Text, so that cat's output compares as a string; larger than one
        // READ (128 KiB) and than a default pipe (64 KiB).
        let content = (0..<30_000).map { "line \($0) of the served file\n" }.joined()
        let backing = directory.sub("backing.txt")
        writeFile(backing, Array(content.utf8))
        let devFuseBefore = openDevFuseDescriptors()

        let fileSystem = try TinyFileSystem(backing: backing, statfsPath: directory.path)
        let mount = try KernelMount(mountpoint: mountpoint, options: ["ro", "fsname=buildfs-kernel-test"])
        let session = KernelSession(channel: try mount.channel())
        let connection = try session.start(KernelInit(wanted: [.asyncRead, .readdirplus, .spliceWrite,
                                                               .parallelDirectoryOperations]))
        #expect(connection.granted.contains(.readdirplus))
        #expect(connection.granted.contains(.initExtended))
        // Not asked for, so not granted even while the fuse module's
        // enable_uring is on (granted, it would hold every request until
        // io_uring entries are registered).
        #expect(!connection.granted.contains(.overIoUring))

        let served = Atomic<Bool>(false)
        let loop = Thread {
            do { try session.serve(threads: 2) { request, channel in fileSystem.handle(request, channel) } } catch {
                Issue.record("serve failed: \(error)")
            }
            served.store(true, ordering: .releasing)
        }
        loop.start()
        #expect(waitUntil(seconds: 5) { session.runningThreads == 2 })

        let cat = runCommand(["cat", mountpoint + "/file.txt"], timeout: 30)
        #expect(cat.succeeded, "\(cat.summary)")
        #expect(cat.stdout == content)
        // A read that starts mid-page and mid-READ, served from a fresh open.
        let tail = runCommand(["tail", "-c", "70001", mountpoint + "/file.txt"], timeout: 30)
        #expect(tail.stdout == String(content.suffix(70001)))

        let listing = runCommand(["ls", "-la", mountpoint], timeout: 30)
        #expect(listing.succeeded, "\(listing.summary)")
        let names = listing.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
        #expect(Set(names).isSuperset(of: [".", "..", "file.txt", "sub"]))
        #expect(listing.stdout.contains(" \(content.utf8.count) "))
        let plainListing = runCommand(["ls", mountpoint + "/sub"], timeout: 30)
        #expect(plainListing.succeeded && plainListing.stdout.isEmpty, "\(plainListing.summary)")

        let status = runCommand(["stat", "-c", "%s %F %a %i", mountpoint + "/file.txt", mountpoint + "/sub"], timeout: 30)
        #expect(status.stdout == "\(content.utf8.count) regular file 444 2\n0 directory 555 3\n", "\(status.summary)")
        let missing = runCommand(["stat", mountpoint + "/nothing"], timeout: 30)
        #expect(!missing.succeeded && missing.stderr.contains("No such file"))
        let statfs = runCommand(["stat", "-f", "-c", "%l", mountpoint], timeout: 30)
        #expect(statfs.stdout == "255\n", "\(statfs.summary)")
        #expect(fileSystem.readRequests.load(ordering: .relaxed) > 0)

        mount.unmount()
        #expect(waitUntil(seconds: 10) { served.load(ordering: .acquiring) })
        #expect(session.runningThreads == 0)
        #expect(!mountPoints(under: directory.path).contains(mountpoint))
        #expect(openDevFuseDescriptors() == devFuseBefore + 1)  // the session's own channel, still held
    }
}

/// Descriptors of this process open on /dev/fuse.
private func openDevFuseDescriptors() -> Int {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return entries.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) == "/dev/fuse" }
        .count
}

/// Root (node 1) holding file.txt (node 2, the bytes of a real file) and
/// an empty directory sub (node 3). Read-only; ENOSYS for what it lacks.
private final class TinyFileSystem: Sendable {
    let backing: Int32
    let statfsPath: String
    let root: stat
    let file: stat
    let subdirectory: stat
    let readRequests = Atomic<Int>(0)

    init(backing path: String, statfsPath: String) throws {
        backing = open(path, O_RDONLY | O_CLOEXEC)
        guard backing >= 0 else { throw SystemCallError("open", path) }
        self.statfsPath = statfsPath
        var status = stat()
        fstat(backing, &status)
        file = Self.node(status, ino: 2, mode: S_IFREG | 0o444)
        status.st_size = 0
        status.st_blocks = 0
        root = Self.node(status, ino: 1, mode: S_IFDIR | 0o555)
        subdirectory = Self.node(status, ino: 3, mode: S_IFDIR | 0o555)
    }

    deinit { close(backing) }

    private static func node(_ base: stat, ino: UInt64, mode: mode_t) -> stat {
        var status = base
        status.st_ino = UInt(ino)
        status.st_mode = mode
        status.st_nlink = mode & S_IFMT == S_IFDIR ? 2 : 1
        return status
    }

    private func attributes(of node: UInt64) -> stat? {
        switch node {
        case 1: root
        case 2: file
        case 3: subdirectory
        default: nil
        }
    }

    func handle(_ request: KernelRequest, _ channel: any ReplySink) {
        let unique = request.unique
        switch request.opcode {
        case .lookup:
            var reader = request.reader()
            guard let name = reader.name() else { channel.reply(unique: unique, error: EINVAL); return }
            let node: UInt64? = request.nodeID != 1 ? nil : [ "file.txt": 2, "sub": 3 ][String(cString: name)]
            guard let node, let status = attributes(of: node) else { channel.reply(unique: unique, error: ENOENT); return }
            channel.reply(unique: unique, buildfs_fuse_entry_out(node: node, attributes: status, entryTimeout: 1,
                                                                 attributeTimeout: 1))
        case .getattr:
            guard let status = attributes(of: request.nodeID) else { channel.reply(unique: unique, error: ENOENT); return }
            channel.reply(unique: unique, buildfs_fuse_attr_out(attributes: status, timeout: 1))
        case .open, .opendir:
            channel.reply(unique: unique, buildfs_fuse_open_out(handle: request.nodeID, flags: 0))
        case .read:
            guard let read = request.body(as: buildfs_fuse_read_in.self), request.nodeID == 2 else {
                channel.reply(unique: unique, error: EINVAL); return
            }
            readRequests.add(1, ordering: .relaxed)
            channel.replyData(unique: unique, fd: backing, offset: Int64(read.offset), size: Int(read.size))
        case .readdir, .readdirplus:
            guard let read = request.body(as: buildfs_fuse_read_in.self) else {
                channel.reply(unique: unique, error: EINVAL); return
            }
            list(request.nodeID, from: read.offset, size: Int(read.size), plus: request.opcode == .readdirplus,
                 unique: unique, channel)
        case .release, .releasedir:
            channel.reply(unique: unique, error: 0)
        case .statfs:
            var info = statvfs()
            statvfs(statfsPath, &info)
            channel.reply(unique: unique, buildfs_fuse_statfs_out(info))
        case .forget, .batchForget:
            break  // no reply
        default:
            channel.reply(unique: unique, error: ENOSYS)
        }
    }

    /// The listing from `offset` on: ".", "..", then the children (offset
    /// n continues after the n-th entry).
    private func list(_ node: UInt64, from offset: UInt64, size: Int, plus: Bool, unique: UInt64,
                      _ channel: any ReplySink) {
        var all: [(String, UInt64)] = [(".", node), ("..", 1)]
        if node == 1 { all += [("file.txt", 2), ("sub", 3)] }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        var entries = DirectoryEntries(into: buffer)
        for (index, (name, child)) in all.enumerated().dropFirst(Int(offset)) {
            let status = attributes(of: child)!
            // "." and ".." are not lookups: node 0 makes the kernel skip them.
            let isDot = name == "." || name == ".."
            let added = plus
                ? entries.addPlus(name: name, entry: buildfs_fuse_entry_out(node: isDot ? 0 : child, attributes: status,
                                                                           entryTimeout: 1, attributeTimeout: 1),
                                  nextOffset: UInt64(index + 1))
                : entries.add(name: name, inode: child, mode: status.st_mode, nextOffset: UInt64(index + 1))
            if !added { break }
        }
        channel.reply(unique: unique, bytes: entries.bytes)
    }
}

/// The loop's own answers, over a socket pair standing in for /dev/fuse
/// (SOCK_SEQPACKET keeps one request per read and one reply per write, as
/// the device does); the test plays the kernel.
@Suite("Kernel loop protocol")
struct KernelLoopProtocolTests {
    @Test func theLoopAnswersProtocolRequestsAndHandsOnTheRest() throws {
        let kernel = try FakeKernel()
        let seen = Mutex<[KernelOpcode?]>([])
        let served = Atomic<Bool>(false)
        let session = try kernel.startedSession()
        let loop = Thread {
            try? session.serve(on: [session.channel]) { request, channel in
                seen.withLock { $0.append(request.opcode) }
                if request.opcode == .getattr {
                    channel.reply(unique: request.unique, buildfs_fuse_attr_out(attributes: sampleStat(), timeout: 2))
                }
            }
            served.store(true, ordering: .releasing)
        }
        loop.start()

        kernel.send(opcode: KernelOpcode.interrupt.rawValue, unique: 11,
                    arguments: bytes(of: buildfs_fuse_interrupt_in(unique: 10)))
        #expect(try kernel.reply() == Reply(unique: 11, error: -ENOSYS, payload: []))
        // FORGET gets no reply: the next reply is GETATTR's.
        kernel.send(opcode: KernelOpcode.forget.rawValue, unique: 12, arguments: bytes(of: buildfs_fuse_forget_in(nlookup: 1)))
        kernel.send(opcode: KernelOpcode.getattr.rawValue, unique: 13, arguments: bytes(of: buildfs_fuse_getattr_in()))
        let getattr = try kernel.reply()
        #expect(getattr.unique == 13 && getattr.error == 0)
        #expect(getattr.payload == bytes(of: buildfs_fuse_attr_out(attributes: sampleStat(), timeout: 2)))
        kernel.send(opcode: 4000, unique: 14, arguments: [])
        #expect(try kernel.reply() == Reply(unique: 14, error: -ENOSYS, payload: []))
        kernel.send(opcode: KernelOpcode.getattr.rawValue, unique: 15, arguments: [], claimedLength: 48)
        #expect(try kernel.reply() == Reply(unique: 15, error: -EINVAL, payload: []))
        #expect(seen.withLock { $0 } == [.forget, .getattr])

        kernel.send(opcode: KernelOpcode.destroy.rawValue, unique: 16, arguments: [])
        #expect(try kernel.reply() == Reply(unique: 16, error: 0, payload: []))
        #expect(waitUntil(seconds: 5) { served.load(ordering: .acquiring) })
        #expect(session.runningThreads == 0)
    }

    @Test func theLoopEndsWhenTheDeviceGoesAway() throws {
        let kernel = try FakeKernel()
        let session = try kernel.startedSession()
        let served = Atomic<Bool>(false)
        let loop = Thread {
            try? session.serve(on: [session.channel]) { _, _ in }
            served.store(true, ordering: .releasing)
        }
        loop.start()
        #expect(waitUntil(seconds: 5) { session.runningThreads == 1 })
        kernel.hangUp()  // reads then return 0, as ENODEV after an unmount
        #expect(waitUntil(seconds: 5) { served.load(ordering: .acquiring) })
        #expect(session.runningThreads == 0)
    }

    @Test func repliesGoOutWholeAndReadRepliesStopAtTheFilesEnd() throws {
        let kernel = try FakeKernel()
        let channel = kernel.daemonChannel()
        let directory = TemporaryDirectory("buildfs-kernel-reply")
        let content = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        writeFile(directory.sub("data"), content)
        let fd = open(directory.sub("data"), O_RDONLY | O_CLOEXEC)
        defer { close(fd) }

        channel.replyData(unique: 21, fd: fd, offset: 1_000, size: 4_096)  // spliced
        #expect(try kernel.reply() == Reply(unique: 21, error: 0, payload: Array(content[1_000..<5_096])))
        channel.replyData(unique: 22, fd: fd, offset: 9_000, size: 4_096)  // the file ends first
        #expect(try kernel.reply() == Reply(unique: 22, error: 0, payload: Array(content[9_000...])))
        channel.replyData(unique: 23, fd: fd, offset: 20_000, size: 4_096)  // past the end
        #expect(try kernel.reply() == Reply(unique: 23, error: 0, payload: []))
        let zero = open("/dev/zero", O_RDONLY | O_CLOEXEC)  // not a regular file: copied
        defer { close(zero) }
        channel.replyData(unique: 24, fd: zero, offset: 0, size: 3_000)
        #expect(try kernel.reply() == Reply(unique: 24, error: 0, payload: [UInt8](repeating: 0, count: 3_000)))

        let first: [UInt8] = [1, 2, 3], second: [UInt8] = [4, 5]
        first.withUnsafeBytes { a in second.withUnsafeBytes { b in _ = channel.reply(unique: 25, pieces: [a, b]) } }
        #expect(try kernel.reply() == Reply(unique: 25, error: 0, payload: [1, 2, 3, 4, 5]))
        let entry = buildfs_fuse_entry_out(node: 5, attributes: sampleStat(), entryTimeout: 1, attributeTimeout: 1)
        let open = buildfs_fuse_open_out(handle: 8, flags: BUILDFS_FOPEN_KEEP_CACHE)
        channel.reply(unique: 26, entry, open)
        #expect(try kernel.reply() == Reply(unique: 26, error: 0, payload: bytes(of: entry) + bytes(of: open)))
    }
}

struct Reply: Equatable {
    var unique: UInt64
    var error: Int32
    var payload: [UInt8]
}

/// The kernel's end of a socket pair whose other end a KernelSession serves.
private final class FakeKernel: @unchecked Sendable {
    private var descriptor: Int32
    private let daemonSide: Int32

    init() throws {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw SystemCallError("socketpair")
        }
        descriptor = ends[0]
        daemonSide = ends[1]
    }

    deinit { hangUp() }

    /// A bare channel on the daemon's end.
    func daemonChannel() -> KernelChannel { KernelChannel(adopting: daemonSide) }

    /// A session on the daemon's end, INIT answered (and the answer checked).
    func startedSession() throws -> KernelSession {
        let session = KernelSession(channel: KernelChannel(adopting: daemonSide))
        send(opcode: KernelOpcode.initialize.rawValue, unique: 1,
             arguments: bytes(of: initIn(minor: 45, flags: [.asyncRead, .initExtended, .maxPages])))
        let connection = try session.start(KernelInit(wanted: [.asyncRead], maxWrite: 1 << 17))
        #expect(connection.granted == [.asyncRead, .initExtended, .maxPages])
        let reply = try reply()
        #expect(reply.unique == 1 && reply.error == 0 && reply.payload.count == 64)
        let initOut = reply.payload.withUnsafeBytes { $0.loadUnaligned(as: buildfs_fuse_init_out.self) }
        #expect(initOut.max_write == 1 << 17 && initOut.max_pages == 32 && initOut.minor == 45)
        return session
    }

    /// Writes one request; `claimedLength` makes its header lie.
    func send(opcode: UInt32, unique: UInt64, arguments: [UInt8], claimedLength: Int? = nil) {
        var header = sampleHeader(opcode: .lookup, unique: unique, length: claimedLength ?? 40 + arguments.count)
        header.opcode = opcode
        let message = bytes(of: header) + arguments
        #expect(message.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } == message.count)
    }

    /// The next reply, waiting up to 5 s.
    func reply() throws -> Reply {
        var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, 5_000) == 1 else { throw SystemCallError("poll (no reply within 5 s)", code: ETIMEDOUT) }
        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        let header = try #require(count >= 16 ? buffer.withUnsafeBytes { $0.loadUnaligned(as: buildfs_fuse_out_header.self) } : nil)
        #expect(Int(header.len) == count)
        return Reply(unique: header.unique, error: header.error, payload: Array(buffer[16..<count]))
    }

    func hangUp() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }
}
