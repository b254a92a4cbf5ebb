import BuildFSCore
@testable import BuildFSMount
import CFuseKernel
import Foundation
import Glibc
import Testing
import TestSupport

/// FUSE over io_uring, byte for byte and without a mount: requests as the
/// kernel leaves them in a ring entry (fs/fuse/dev_uring.c: the in header
/// in `in_out`, the first argument in `op_in`, every other argument in the
/// payload) made into the request one read of /dev/fuse gives, and replies
/// placed where the kernel takes them at COMMIT_AND_FETCH.
@Suite("Kernel ring entries")
struct KernelRingEntryTests {
    let entry = KernelRingEntry(payloadSize: 64 << 10, notifications: nil)
    let scratch = ReceiveBuffer(size: KernelRingEntry.requestSize(payloadSize: 64 << 10))

    /// Fills the entry as the kernel does with a request of `firstArgument`
    /// then `payload` (its other arguments).
    private func fill(opcode: KernelOpcode, unique: UInt64, node: UInt64 = 1, firstArgument: [UInt8],
                      payload: [UInt8], extensionUnits: UInt16 = 0) -> [UInt8] {
        let header = sampleHeader(opcode: opcode, unique: unique, length: 40 + firstArgument.count + payload.count,
                                  node: node, extensionUnits: extensionUnits)
        let base = entry.header.baseAddress!
        _ = base.initializeMemory(as: UInt8.self, repeating: 0xEE, count: entry.header.count)
        base.storeBytes(of: header, as: buildfs_fuse_in_header.self)
        firstArgument.withUnsafeBytes { bytes in
            if let source = bytes.baseAddress {
                (base + KernelRingEntry.operationHeaderOffset).copyMemory(from: source, byteCount: bytes.count)
            }
        }
        let bookkeeping = buildfs_fuse_uring_ent_in_out(flags: 0, commit_id: unique, payload_sz: UInt32(payload.count),
                                                        padding: 0, reserved: 0)
        base.storeBytes(of: bookkeeping, toByteOffset: KernelRingEntry.bookkeepingOffset,
                        as: buildfs_fuse_uring_ent_in_out.self)
        payload.withUnsafeBytes { bytes in
            if let source = bytes.baseAddress { entry.payload.baseAddress!.copyMemory(from: source, byteCount: bytes.count) }
        }
        return bytes(of: header) + firstArgument + payload
    }

    private func assembled(_ count: Int) -> [UInt8] { Array(UnsafeRawBufferPointer(rebasing: scratch.bytes[..<count])) }

    /// The reply as the kernel reads it: the out header, the payload's
    /// first `payload_sz` bytes.
    private var reply: (header: buildfs_fuse_out_header, payload: [UInt8]) {
        let header = entry.header.baseAddress!.loadUnaligned(as: buildfs_fuse_out_header.self)
        let count = Int(entry.bookkeeping.payload_sz)
        return (header, Array(UnsafeRawBufferPointer(rebasing: entry.payload[..<count])))
    }

    @Test func lookupHasAnEmptyFirstArgumentAndItsNameInThePayload() throws {
        let expected = fill(opcode: .lookup, unique: 7, node: 5, firstArgument: [], payload: Array("name.txt\0".utf8))
        let request = try entry.request(assemblingInto: scratch.bytes)
        #expect(assembled(expected.count) == expected)
        #expect(request.opcode == .lookup && request.unique == 7 && request.nodeID == 5)
        var reader = request.reader()
        #expect(reader.name().map { String(cString: $0) } == "name.txt")
        #expect(reader.remaining.isEmpty)
    }

    @Test func writeHasItsStructInOpInAndItsDataInThePayload() throws {
        let data = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let writeIn = buildfs_fuse_write_in(fh: 3, offset: 4096, size: UInt32(data.count), write_flags: 0,
                                            lock_owner: 0, flags: 0, padding: 0)
        let expected = fill(opcode: .write, unique: 8, firstArgument: bytes(of: writeIn), payload: data)
        let request = try entry.request(assemblingInto: scratch.bytes)
        #expect(assembled(expected.count) == expected)
        var reader = request.reader()
        #expect(reader.read(buildfs_fuse_write_in.self)?.offset == 4096)
        #expect(reader.bytes(data.count).map { Array($0) } == data)
    }

    @Test func extensionsStayAtTheEnd() throws {
        // MKDIR with CREATE_SUPP_GROUP: mkdir_in in op_in; the name, then
        // the extension, in the payload.
        let groups = le(UInt32(16), UInt32(32), UInt32(1), UInt32(1000))
        let expected = fill(opcode: .mkdir, unique: 9, firstArgument: bytes(of: buildfs_fuse_mkdir_in(mode: 0o755, umask: 0o22)),
                            payload: Array("dir\0".utf8) + groups, extensionUnits: 2)
        let request = try entry.request(assemblingInto: scratch.bytes)
        #expect(assembled(expected.count) == expected)
        var reader = request.reader()
        #expect(reader.read(buildfs_fuse_mkdir_in.self)?.mode == 0o755)
        #expect(reader.name().map { String(cString: $0) } == "dir")
        #expect(Array(request.extensions) == groups)
    }

    @Test func aHeaderThatDoesNotAddUpIsRefused() throws {
        // 200 bytes would be the first argument: more than op_in holds.
        _ = fill(opcode: .getattr, unique: 10, firstArgument: [], payload: [])
        entry.header.baseAddress!.storeBytes(of: UInt32(240), as: UInt32.self)
        #expect(throws: KernelRequest.Malformed.self) { try entry.request(assemblingInto: scratch.bytes) }
        // A payload the header does not count.
        _ = fill(opcode: .getattr, unique: 11, firstArgument: [], payload: Array(repeating: 1, count: 16))
        entry.header.baseAddress!.storeBytes(of: UInt32(40), as: UInt32.self)
        do throws(KernelRequest.Malformed) {
            _ = try entry.request(assemblingInto: scratch.bytes)
            Issue.record("accepted a payload the header does not count")
        } catch {
            #expect(error.unique == 11)
        }
    }

    @Test func aStructReplyGoesToThePayloadWithItsHeaderInInOut() throws {
        _ = fill(opcode: .getattr, unique: 12, firstArgument: bytes(of: buildfs_fuse_getattr_in()), payload: [])
        _ = try entry.request(assemblingInto: scratch.bytes)
        let attributes = buildfs_fuse_attr_out(attributes: sampleStat(), timeout: 1.5)
        #expect(entry.reply(unique: 12, attributes) == 0)
        #expect(entry.replied)
        #expect(bytes(of: reply.header) == bytes(of: buildfs_fuse_out_header(len: 16 + 104, error: 0, unique: 12)))
        #expect(reply.payload == bytes(of: attributes))
        // The kernel's commit id is left as it was.
        #expect(entry.bookkeeping.commit_id == 12)
    }

    @Test func anErrorReplyHasNoPayload() throws {
        _ = fill(opcode: .lookup, unique: 13, firstArgument: [], payload: Array("gone\0".utf8))
        _ = try entry.request(assemblingInto: scratch.bytes)
        entry.reply(unique: 13, error: ENOENT)
        #expect(bytes(of: reply.header) == bytes(of: buildfs_fuse_out_header(len: 16, error: -ENOENT, unique: 13)))
        #expect(reply.payload.isEmpty)
    }

    @Test func twoStructsAndPiecesAreLaidOneAfterTheOther() throws {
        let entryOut = buildfs_fuse_entry_out(node: 42, attributes: sampleStat(), entryTimeout: 1, attributeTimeout: 2)
        let openOut = buildfs_fuse_open_out(handle: 77, flags: BUILDFS_FOPEN_KEEP_CACHE)
        _ = fill(opcode: .create, unique: 14, firstArgument: bytes(of: buildfs_fuse_create_in()), payload: Array("new\0".utf8))
        _ = try entry.request(assemblingInto: scratch.bytes)
        entry.reply(unique: 14, entryOut, openOut)
        #expect(reply.header.len == 16 + 128 + 16 && reply.header.error == 0)
        #expect(reply.payload == bytes(of: entryOut) + bytes(of: openOut))

        _ = fill(opcode: .readdir, unique: 15, firstArgument: bytes(of: buildfs_fuse_read_in()), payload: [])
        _ = try entry.request(assemblingInto: scratch.bytes)
        let parts: [[UInt8]] = [Array("abc".utf8), [], Array(repeating: 9, count: 5000)]
        parts[0].withUnsafeBytes { a in
            parts[1].withUnsafeBytes { b in parts[2].withUnsafeBytes { c in _ = entry.reply(unique: 15, pieces: [a, b, c]) } }
        }
        #expect(reply.header.len == UInt32(16 + 5003))
        #expect(reply.payload == parts.flatMap { $0 })
    }

    @Test func readDataIsReadIntoThePayload() throws {
        let directory = TemporaryDirectory("buildfs-ring-read")
        let content = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        writeFile(directory.sub("file"), content)
        let fd = open(directory.sub("file"), O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        for (offset, size, expected) in [(1_000, 4_096, content[1_000..<5_096]), (9_000, 4_096, content[9_000...]),
                                         (20_000, 4_096, content[0..<0])] {
            _ = fill(opcode: .read, unique: 16, firstArgument: bytes(of: buildfs_fuse_read_in()), payload: [])
            _ = try entry.request(assemblingInto: scratch.bytes)
            entry.replyData(unique: 16, fd: fd, offset: Int64(offset), size: size)
            #expect(reply.header.error == 0 && reply.header.len == UInt32(16 + expected.count))
            #expect(reply.payload == Array(expected))
        }
    }

    @Test func aSecondReplyIsDropped() throws {
        _ = fill(opcode: .flush, unique: 17, firstArgument: bytes(of: buildfs_fuse_flush_in()), payload: [])
        _ = try entry.request(assemblingInto: scratch.bytes)
        #expect(entry.reply(unique: 17, error: 0) == 0)
        #expect(entry.reply(unique: 17, error: EIO) == EALREADY)
        #expect(reply.header.error == 0)
    }

    @Test func queuesAreThePossibleCPUs() {
        #expect(KernelRing.possibleCPUs("0-1\n") == 2)
        #expect(KernelRing.possibleCPUs("0\n") == 1)
        #expect(KernelRing.possibleCPUs("0,2-3\n") == 3)
        #expect(KernelRing.possibleCPUs(nil) == 1)
    }

    @Test func theRingIsTheDefaultAndSwitchedOffByZero() {
        #expect(KernelRing.choice(in: [:]) == .wherePossible)
        #expect(KernelRing.choice(in: [KernelRing.environmentVariable: "0"]) == .off)
        #expect(KernelRing.choice(in: [KernelRing.environmentVariable: "1"]) == .insisted)
        // Several threads a queue, fewer on big machines, never one.
        #expect(KernelRing.threadsPerQueue(queues: 1) == 4)
        #expect(KernelRing.threadsPerQueue(queues: 2) == 4)
        #expect(KernelRing.threadsPerQueue(queues: 4) == 2)
        #expect(KernelRing.threadsPerQueue(queues: 64) == 2)
    }
}

/// The daemon over io_uring against the real kernel: a real workload from
/// other processes, the same results as in a plain directory.
@Suite("Kernel ring mount")
struct KernelRingMountTests {
    /// Root may turn the fuse module's enable_uring on; elsewhere it must
    /// already be on.
    static var ringCanBeTurnedOn: Bool {
        guard MountKind.current == .buildfs,
              let value = try? String(contentsOfFile: KernelRing.moduleParameter, encoding: .utf8) else { return false }
        return value.hasPrefix("Y") || access(KernelRing.moduleParameter, W_OK) == 0
    }

    @Test(.enabled(if: KernelRingMountTests.ringCanBeTurnedOn,
                   "needs buildfs's daemon and the fuse module's enable_uring on or writable (root, FUSE over io_uring)"))
    func servesAWorkloadOverIoUring() throws {
        let directory = TemporaryDirectory("buildfs-ring-mount")
        for name in ["upper", "mnt", "plain"] { mkdir(directory.sub(name), 0o755) }
        let mnt = directory.sub("mnt")
        let started = Run.command(MountKind.buildfs.mountCommand(mnt, upper: directory.sub("upper"), options: []),
                                  timeout: 30, environment: [KernelRing.environmentVariable: "1"])
        try #require(started.status == 0, "mount: \(started.summary)")
        let mount = MountUnderTest(adopting: mnt, upper: directory.sub("upper"), keeping: directory)

        // More than one 1 MiB WRITE, names created, listed, renamed, removed.
        let script = """
            set -e
            seq 1 300000 > data.txt
            cp data.txt copy.txt
            cmp data.txt copy.txt
            mkdir sub
            for i in $(seq 1 60); do echo "file $i" > sub/f$i; done
            printf 'hello ring\\n' > sub/small.txt
            mv sub/small.txt sub/renamed.txt
            cat sub/renamed.txt
            ls -l sub | awk 'NR > 1 { print $1, $5, $9 }' | sort
            rm sub/f1 sub/f2 copy.txt
            ls -a . sub | sort | tr '\\n' ' '; echo
            sha256sum data.txt
            tail -c 20 data.txt | od -c | head -2
            """
        let expected = Run.command(["bash", "-c", script], directory: directory.sub("plain"))
        try #require(expected.status == 0, "in a plain directory: \(expected.summary)")
        let got = Run.command(["bash", "-c", script], timeout: 120, directory: mnt)
        #expect(got.status == 0 && got.stdout == expected.stdout, "over io_uring: \(got.summary)\nplain: \(expected.stdout)")
        // What the mount wrote is in the upper directory.
        #expect(Run.command(["cmp", directory.sub("upper/data.txt"), directory.sub("plain/data.txt")]).status == 0)

        let resolved = MountPreflight.resolvedPath(mnt)
        let transport = MountRegistry.transport(for: resolved) ?? ""
        #expect(transport.contains("io_uring, \(KernelRing.possibleCPUs()) queues"), "transport: \(transport)")
        let log = (try? String(contentsOfFile: MountRegistry.logPath(for: resolved), encoding: .utf8)) ?? ""
        #expect(log.contains("serving on the own FUSE loop over io_uring"), "daemon log: \(log)")
        #expect(!log.contains("not used") && !log.contains("failed") && !log.contains("no reply"), "daemon log: \(log)")

        #expect(mount.unmount().status == 0)
        #expect(waitUntil(seconds: 10) { fuseDaemons(serving: mnt).isEmpty })
    }

    /// BUILDFS_FUSE_IO_URING=0: /dev/fuse, and the transport line says why.
    @Test(.enabled(if: MountKind.current == .buildfs, "buildfs's daemon"))
    func switchedOffItServesDevFuse() throws {
        let directory = TemporaryDirectory("buildfs-ring-off")
        for name in ["upper", "mnt"] { mkdir(directory.sub(name), 0o755) }
        let mnt = directory.sub("mnt")
        let started = Run.command(MountKind.buildfs.mountCommand(mnt, upper: directory.sub("upper"), options: []),
                                  timeout: 30, environment: [KernelRing.environmentVariable: "0"])
        try #require(started.status == 0, "mount: \(started.summary)")
        let mount = MountUnderTest(adopting: mnt, upper: directory.sub("upper"), keeping: directory)
        #expect(Run.command(["bash", "-c", "echo hi > f && cat f"], directory: mnt).stdout == "hi\n")
        let transport = MountRegistry.transport(for: MountPreflight.resolvedPath(mnt)) ?? ""
        #expect(transport.hasPrefix("own FUSE loop, \(MountDaemon.servingThreads) threads (io_uring switched off)"),
                "transport: \(transport)")
        #expect(mount.unmount().status == 0)
    }

    /// The default where the kernel offers it, with several threads per
    /// queue: a request that waits (a read whose block the remote store has
    /// not sent) holds its own thread only, and the next request from the
    /// same CPU is answered at once. With one thread per queue the lookup
    /// below waited for the read.
    @Test(.enabled(if: KernelRingMountTests.ringCanBeTurnedOn,
                   "needs buildfs's daemon and the fuse module's enable_uring on or writable (root, FUSE over io_uring)"))
    func aWaitingReadHoldsNoOtherRequestOfItsCPU() throws {
        let directory = TemporaryDirectory("buildfs-ring-wait")
        let source = directory.sub("source")
        for name in ["source", "upper", "mnt"] { mkdir(directory.sub(name), 0o755) }
        // The prefetch goes in tree order: the small file comes after 48 MiB.
        #expect(try Shell.bash("""
            head -c \(48 << 20) /dev/urandom > '\(source)/aa-big' && echo 'the last file' > '\(source)/zz-small' \
              && echo other > '\(source)/other'
            """).status == 0)
        let server = try NginxServer()
        let imported = try Shell.run([Shell.buildfs, "import", source, "--key", "wait", "--store", server.url,
                                      "--cache-dir", directory.sub("saver")])
        try #require(imported.status == 0, "\(imported.stderr)")
        let proxy = try LatencyProxy(target: server.port, delayMilliseconds: 0)
        let mnt = directory.sub("mnt")
        let mounted = try Shell.run([Shell.buildfs, "mount", mnt, "--upper", directory.sub("upper"), "--from", "wait",
                                     "--store", proxy.url(of: server), "--cache-dir", directory.sub("cache")])
        proxy.pause()
        defer {
            proxy.resume()
            _ = try? Shell.run([Shell.buildfs, "umount", mnt])
        }
        try #require(mounted.status == 0, "\(mounted.stderr)")
        let transport = MountRegistry.transport(for: MountPreflight.resolvedPath(mnt)) ?? ""
        try #require(transport.contains("over io_uring"), "transport: \(transport)")

        let output = OutputFile()
        let reader = try Child(["taskset", "-c", "0", "cat", mnt + "/zz-small"], stdout: output.fd)
        usleep(500_000)
        try #require(reader.isRunning, "the read did not wait: its block was fetched before the pause")
        let start = Date()
        // A lookup: metadata, which the mount has (the data of "other" may
        // share the waiting block).
        let looked = Run.command(["taskset", "-c", "0", "stat", "-c", "%s", mnt + "/other"], timeout: 30)
        let took = Date().timeIntervalSince(start)
        #expect(looked.status == 0 && looked.stdout == "6\n", "\(looked.summary)")
        #expect(took < 1.5, "a lookup from the same CPU took \(took) s behind the waiting read")
        #expect(reader.isRunning, "the read ended while the server sent nothing")
        proxy.resume()
        #expect(reader.wait() == 0)
        #expect(output.contents() == "the last file\n")
    }
}
