@testable import BuildFSMount
import CFuseKernel
import Glibc
import Testing

/// The FUSE kernel protocol as bytes: struct layouts at 7.45, the reply
/// encoders, directory packing, request parsing and the INIT handshake,
/// all without a kernel.
@Suite("Kernel wire")
struct KernelWireTests {
    // MARK: Layouts

    @Test func structSizesAndOffsetsAreTheKernels() {
        #expect(MemoryLayout<buildfs_fuse_in_header>.size == 40)
        #expect(MemoryLayout<buildfs_fuse_in_header>.offset(of: \.total_extlen) == 36)
        #expect(MemoryLayout<buildfs_fuse_out_header>.size == 16)
        #expect(MemoryLayout<buildfs_fuse_entry_out>.size == 128)
        #expect(MemoryLayout<buildfs_fuse_entry_out>.offset(of: \.attr) == 40)
        #expect(MemoryLayout<buildfs_fuse_attr_out>.size == 104)
        #expect(MemoryLayout<buildfs_fuse_direntplus>.size == 152)
        #expect(MemoryLayout<buildfs_fuse_init_in>.offset(of: \.flags2) == 16)
        #expect(MemoryLayout<buildfs_fuse_init_out>.size == 64)
        #expect(MemoryLayout<buildfs_fuse_init_out>.offset(of: \.flags2) == 32)
        #expect(MemoryLayout<buildfs_fuse_init_out>.offset(of: \.max_stack_depth) == 36)
        #expect(MemoryLayout<buildfs_fuse_init_out>.offset(of: \.request_timeout) == 40)
        #expect(MemoryLayout<buildfs_fuse_open_out>.offset(of: \.backing_id) == 12)
        #expect(MemoryLayout<buildfs_fuse_backing_map>.size == 16)
        #expect(BUILDFS_FUSE_DEV_IOC_CLONE == 0x8004_e500)
        #expect(BUILDFS_FUSE_DEV_IOC_BACKING_OPEN == 0x4010_e501)
        #expect(KernelFeatures.passthrough.rawValue == 1 << 37)
        #expect(KernelFeatures.overIoUring.rawValue == 1 << 41)
        #expect(KernelFeatures.handleKillPrivV2.rawValue == 1 << 28)
    }

    // MARK: Encoders

    @Test func timeoutsSplitIntoSecondsAndNanoseconds() {
        #expect(KernelTimeout(1.5) == KernelTimeout(seconds: 1, nanoseconds: 500_000_000))
        #expect(KernelTimeout(-3) == KernelTimeout(seconds: 0, nanoseconds: 0))
        #expect(KernelTimeout(.nan) == KernelTimeout(seconds: 0, nanoseconds: 0))
        #expect(KernelTimeout(0.999_999_999_9) == KernelTimeout(seconds: 0, nanoseconds: 999_999_999))
        #expect(KernelTimeout(1e30) == KernelTimeout(seconds: .max, nanoseconds: 999_999_999))
    }

    @Test func entryOutIsByteExact() {
        let entry = buildfs_fuse_entry_out(node: 0x1122, generation: 3, attributes: sampleStat(),
                                           entryTimeout: 2.25, attributeTimeout: 7)
        var expected = le(UInt64(0x1122), UInt64(3), UInt64(2), UInt64(7), UInt32(250_000_000), UInt32(0))
        expected += le(UInt64(4242), UInt64(100_000), UInt64(200), UInt64(1_600_000_000), UInt64(1_600_000_001),
                     UInt64(1_600_000_002))
        expected += le(UInt32(111), UInt32(222), UInt32(333), UInt32(S_IFREG | 0o640), UInt32(2), UInt32(1000),
                     UInt32(1001), UInt32(0x0801), UInt32(4096), UInt32(0))
        #expect(bytes(of: entry) == expected)
        #expect(expected.count == 128)
    }

    @Test func attrOutOpenOutWriteOutAndXattrSizeAreByteExact() {
        let attributes = buildfs_fuse_attr_out(attributes: sampleStat(), timeout: 0.5)
        #expect(Array(bytes(of: attributes)[0..<16]) == le(UInt64(0), UInt32(500_000_000), UInt32(0)))
        #expect(Array(bytes(of: attributes)[16...]) == bytes(of: buildfs_fuse_attr(sampleStat())))

        let open = buildfs_fuse_open_out(handle: 0xAABB, flags: BUILDFS_FOPEN_PASSTHROUGH | BUILDFS_FOPEN_KEEP_CACHE,
                                         backingID: 9)
        #expect(bytes(of: open) == le(UInt64(0xAABB), UInt32(0x82), Int32(9)))
        #expect(bytes(of: buildfs_fuse_write_out(written: 4096)) == le(UInt32(4096), UInt32(0)))
        #expect(bytes(of: buildfs_fuse_getxattr_out(needed: 17)) == le(UInt32(17), UInt32(0)))
    }

    @Test func statfsOutFromStatvfs() {
        var info = statvfs()
        info.f_bsize = 4096
        info.f_frsize = 1024
        info.f_blocks = 1000
        info.f_bfree = 600
        info.f_bavail = 500
        info.f_files = 90
        info.f_ffree = 80
        info.f_namemax = 255
        var expected = le(UInt64(1000), UInt64(600), UInt64(500), UInt64(90), UInt64(80))
        expected += le(UInt32(4096), UInt32(255), UInt32(1024), UInt32(0))
        expected += [UInt8](repeating: 0, count: 24)
        #expect(bytes(of: buildfs_fuse_statfs_out(info)) == expected)
    }

    // MARK: Directory entries

    @Test func direntRecordsArePaddedToEightBytes() {
        withDirectoryBuffer(capacity: 4096) { entries in
            var added: Bool
            added = entries.add(name: "a", inode: 5, mode: S_IFREG | 0o644, nextOffset: 1)
            #expect(added)
            added = entries.add(name: "subdir", inode: 6, mode: S_IFDIR, nextOffset: 2)
            #expect(added)
            var expected = le(UInt64(5), UInt64(1), UInt32(1), UInt32(DT_REG))
            expected += Array("a".utf8) + [UInt8](repeating: 0, count: 7)
            expected += le(UInt64(6), UInt64(2), UInt32(6), UInt32(DT_DIR))
            expected += Array("subdir".utf8) + [0, 0]
            #expect(entries.used == 64)
            #expect(Array(entries.bytes) == expected)
        }
    }

    @Test func direntplusRecordsCarryTheEntryAndItsInode() {
        withDirectoryBuffer(capacity: 4096) { entries in
            var added: Bool
            let entry = buildfs_fuse_entry_out(node: 77, attributes: sampleStat(), entryTimeout: 1, attributeTimeout: 1)
            added = entries.addPlus(name: "hello", entry: entry, nextOffset: 3)
            #expect(added)
            #expect(entries.used == 160)  // 152 + 5, padded
            let record = Array(entries.bytes)
            #expect(Array(record[0..<128]) == bytes(of: entry))
            #expect(Array(record[128..<152]) == le(UInt64(4242), UInt64(3), UInt32(5), UInt32(DT_REG)))
            #expect(Array(record[152..<160]) == Array("hello".utf8) + [0, 0, 0])
        }
    }

    @Test func aRecordThatDoesNotFitIsNotAdded() {
        withDirectoryBuffer(capacity: 56) { entries in
            var added: Bool
            added = entries.add(name: "first", inode: 1, mode: S_IFREG, nextOffset: 1)  // 32 bytes
            #expect(added)
            added = entries.add(name: "second-one", inode: 2, mode: S_IFREG, nextOffset: 2)  // 40 > 24 left
            #expect(!added)
            #expect(entries.used == 32)
            added = entries.add(name: "third", inode: 3, mode: S_IFREG, nextOffset: 3)  // 32 > 24
            #expect(!added)
            added = entries.add(name: "", inode: 4, mode: S_IFREG, nextOffset: 4)  // exactly 24 left
            #expect(added)
            #expect(entries.used == 56)
        }
    }

    // MARK: Requests

    @Test func aLookupReadsItsHeaderAndName() throws {
        try withRequest(opcode: .lookup, unique: 7, node: 1, arguments: Array("name.txt\0".utf8)) { request in
            #expect(request.opcode == .lookup)
            #expect(request.unique == 7)
            #expect(request.nodeID == 1)
            #expect(request.uid == 1000 && request.gid == 1001 && request.pid == 4321)
            var reader = request.reader()
            #expect(reader.name().map { String(cString: $0) } == "name.txt")
            #expect(reader.remaining.count == 0)
            #expect(reader.name() == nil)
        }
    }

    @Test func renameReadsStructAndTwoNames() throws {
        let arguments = bytes(of: buildfs_fuse_rename_in(newdir: 9)) + Array("old\0new\0".utf8)
        try withRequest(opcode: .rename, arguments: arguments) { request in
            var reader = request.reader()
            #expect(reader.read(buildfs_fuse_rename_in.self)?.newdir == 9)
            #expect(reader.name().map { String(cString: $0) } == "old")
            #expect(reader.name().map { String(cString: $0) } == "new")
        }
    }

    @Test func aNameWithoutItsNulIsRefusedNotOverread() throws {
        try withRequest(opcode: .lookup, arguments: Array("abc".utf8), trailing: Array("def\0".utf8)) { request in
            var reader = request.reader()
            #expect(reader.name() == nil)
            #expect(reader.remaining.count == 3)  // nothing consumed
        }
    }

    @Test func aBodyTooShortIsNil() throws {
        try withRequest(opcode: .read, arguments: [UInt8](repeating: 1, count: 39)) { request in
            #expect(request.body(as: buildfs_fuse_read_in.self) == nil)
            #expect(request.body(as: buildfs_fuse_open_in.self) != nil)
        }
    }

    @Test func setxattrWithoutTheExtensionReadsTheShortForm() throws {
        let arguments = le(UInt32(5), UInt32(1 /* XATTR_CREATE */)) + Array("user.x\0hello".utf8)
        try withRequest(opcode: .setxattr, arguments: arguments) { request in
            var reader = request.reader()
            let header = reader.read(buildfs_fuse_setxattr_in.self, size: Int(BUILDFS_FUSE_COMPAT_SETXATTR_IN_SIZE))
            #expect(header?.size == 5 && header?.flags == UInt32(1 /* XATTR_CREATE */) && header?.setxattr_flags == 0)
            #expect(reader.name().map { String(cString: $0) } == "user.x")
            #expect(reader.bytes(5).map { Array($0) } == Array("hello".utf8))
            #expect(reader.bytes(1) == nil)
        }
    }

    @Test func extensionsAreSkipped() throws {
        // MKDIR with CREATE_SUPP_GROUP: mkdir_in, the name, then one
        // extension (header, nr_groups, one group) in total_extlen units.
        let arguments = bytes(of: buildfs_fuse_mkdir_in(mode: 0o755, umask: 0o022)) + Array("dir\0".utf8)
        let groups = le(UInt32(16), UInt32(32), UInt32(1), UInt32(1000))
        try withRequest(opcode: .mkdir, arguments: arguments, extensions: groups) { request in
            #expect(request.arguments.count == 12)
            var reader = request.reader()
            #expect(reader.read(buildfs_fuse_mkdir_in.self)?.mode == 0o755)
            #expect(reader.name().map { String(cString: $0) } == "dir")
            #expect(reader.remaining.count == 0)
            #expect(Array(request.extensions) == groups)
        }
    }

    @Test func malformedHeadersAreRefusedWithTheirUnique() {
        #expect(throws: KernelRequest.Malformed.self) {
            try [UInt8](repeating: 0, count: 39).withUnsafeBytes { _ = try KernelRequest($0) }
        }
        // Length field disagrees with what was read.
        var header = sampleHeader(opcode: .getattr, unique: 55, length: 48)
        let lying = bytes(of: header) + [UInt8](repeating: 0, count: 4)
        #expect(parseFailure(lying)?.unique == 55)
        // More extension bytes than the request has.
        header.len = 48
        header.total_extlen = 2
        #expect(parseFailure(bytes(of: header) + [UInt8](repeating: 0, count: 8))?.unique == 55)
        header.total_extlen = 1
        #expect(parseFailure(bytes(of: header) + [UInt8](repeating: 0, count: 8)) == nil)
    }

    @Test func unknownOpcodesParseWithoutAnOpcode() throws {
        var header = sampleHeader(opcode: .lookup, unique: 1, length: 40)
        header.opcode = 4000
        try bytes(of: header).withUnsafeBytes { raw in
            let request = try KernelRequest(raw)
            #expect(request.opcode == nil)
        }
    }

    // MARK: INIT

    @Test func initGrantsTheIntersectionWithFlags2UnderInitExt() throws {
        let offered: KernelFeatures = [.asyncRead, .initExtended, .maxPages, .spliceWrite, .passthrough,
                                       .handleKillPrivV2]
        let terms = KernelInit(wanted: [.asyncRead, .passthrough, .handleKillPrivV2, .writebackCache, .overIoUring],
                               maxWrite: 1 << 20, maxReadahead: 1 << 20)
        let (connection, reply) = try accepted(terms.negotiate, offered: offered, readahead: 128 << 10)
        #expect(connection.granted == [.asyncRead, .passthrough, .handleKillPrivV2, .initExtended, .maxPages])
        #expect(reply.flags == UInt32(truncatingIfNeeded: (KernelFeatures.asyncRead.rawValue
                                                          | KernelFeatures.handleKillPrivV2.rawValue
                                                          | KernelFeatures.initExtended.rawValue
                                                          | KernelFeatures.maxPages.rawValue)))
        #expect(reply.flags2 == 1 << 5)  // passthrough, bit 37
        #expect(reply.major == 7 && reply.minor == 45)
        #expect(reply.max_stack_depth == 1)
        #expect(reply.max_write == 1 << 20)
        #expect(reply.max_pages == 256)
        #expect(reply.max_readahead == 1 << 20)  // the kernel caps it, not the daemon
        #expect(reply.time_gran == 1)
        #expect(connection.summary.contains("passthrough"))
        #expect(!connection.summary.contains("over_io_uring"))
    }

    @Test func flags2DoesNotCountWithoutInitExt() throws {
        let terms = KernelInit(wanted: [.asyncRead, .passthrough])
        let (connection, reply) = try accepted(terms.negotiate, offered: [.asyncRead],
                                               flags2: UInt32(KernelFeatures.passthrough.rawValue >> 32))
        #expect(connection.granted == [.asyncRead])
        #expect(reply.flags2 == 0)
        #expect(reply.max_stack_depth == 0)
        #expect(reply.max_pages == 0)  // MAX_PAGES was not offered
    }

    @Test func passthroughIsNotClaimedWithTheWritebackCache() throws {
        let terms = KernelInit(wanted: [.passthrough, .writebackCache], maxBackground: 64)
        let (connection, reply) = try accepted(terms.negotiate, offered: [.initExtended, .passthrough, .writebackCache])
        #expect(connection.granted == [.writebackCache, .initExtended])
        #expect(reply.max_stack_depth == 0)
        #expect(reply.max_background == 64 && reply.congestion_threshold == 48)
    }

    @Test func oldOrForeignKernelsAreRefusedCleanly() throws {
        let terms = KernelInit(wanted: [.asyncRead])
        try withRequest(opcode: .initialize, arguments: bytes(of: initIn(minor: 30, flags: [.asyncRead]))) { request in
            guard case .refused(let error, let reason) = terms.negotiate(request) else {
                Issue.record("7.30 accepted")
                return
            }
            #expect(error == EPROTO)
            #expect(reason.contains("7.30"))
        }
        var newer = initIn(minor: 0, flags: [])
        newer.major = 8
        try withRequest(opcode: .initialize, arguments: bytes(of: newer)) { request in
            guard case .newerMajor(let reply) = terms.negotiate(request) else {
                Issue.record("major 8 not answered with our version")
                return
            }
            #expect(reply.major == 7 && reply.minor == 45 && reply.flags == 0)
        }
        try withRequest(opcode: .initialize, arguments: [UInt8](repeating: 0, count: 20)) { request in
            guard case .refused(let error, _) = terms.negotiate(request) else {
                Issue.record("short INIT accepted")
                return
            }
            #expect(error == EINVAL)
        }
    }
}

// MARK: Helpers

/// Little-endian bytes of `values`, field after field: what an encoder
/// must produce.
func le<each T: FixedWidthInteger>(_ values: repeat each T) -> [UInt8] {
    var bytes: [UInt8] = []
    for value in repeat each values { bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    return bytes
}

func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

/// A stat with every field distinct.
func sampleStat() -> stat {
    var status = stat()
    status.st_ino = 4242
    status.st_size = 100_000
    status.st_blocks = 200
    status.st_atim = timespec(tv_sec: 1_600_000_000, tv_nsec: 111)
    status.st_mtim = timespec(tv_sec: 1_600_000_001, tv_nsec: 222)
    status.st_ctim = timespec(tv_sec: 1_600_000_002, tv_nsec: 333)
    status.st_mode = S_IFREG | 0o640
    status.st_nlink = 2
    status.st_uid = 1000
    status.st_gid = 1001
    status.st_rdev = 0x0801
    status.st_blksize = 4096
    return status
}

func sampleHeader(opcode: KernelOpcode, unique: UInt64, length: Int, node: UInt64 = 1,
                  extensionUnits: UInt16 = 0) -> buildfs_fuse_in_header {
    buildfs_fuse_in_header(len: UInt32(length), opcode: opcode.rawValue, unique: unique, nodeid: node, uid: 1000,
                           gid: 1001, pid: 4321, total_extlen: extensionUnits, padding: 0)
}

/// Parses a request of `arguments` (and `extensions`) laid out as the
/// kernel does, inside a larger buffer whose `trailing` bytes are not part
/// of it (what a parser must not read).
func withRequest(opcode: KernelOpcode, unique: UInt64 = 1, node: UInt64 = 1, arguments: [UInt8],
                 extensions: [UInt8] = [], trailing: [UInt8] = [],
                 _ body: (KernelRequest) throws -> Void) throws {
    let length = 40 + arguments.count + extensions.count
    let header = sampleHeader(opcode: opcode, unique: unique, length: length, node: node,
                              extensionUnits: UInt16(extensions.count / 8))
    let buffer = bytes(of: header) + arguments + extensions + trailing
    try buffer.withUnsafeBytes { raw in
        try body(try KernelRequest(UnsafeRawBufferPointer(rebasing: raw[..<length])))
    }
}

func parseFailure(_ bytes: [UInt8]) -> KernelRequest.Malformed? {
    bytes.withUnsafeBytes { raw in
        do throws(KernelRequest.Malformed) {
            _ = try KernelRequest(raw)
            return nil
        } catch {
            return error
        }
    }
}

func initIn(minor: UInt32, flags: KernelFeatures, flags2: UInt32? = nil,
            readahead: UInt32 = 1 << 20) -> buildfs_fuse_init_in {
    var offer = buildfs_fuse_init_in()
    offer.major = 7
    offer.minor = minor
    offer.max_readahead = readahead
    offer.flags = UInt32(truncatingIfNeeded: flags.rawValue)
    offer.flags2 = flags2 ?? UInt32(truncatingIfNeeded: flags.rawValue >> 32)
    return offer
}

/// Runs `negotiate` on a 7.45 INIT offering `offered`; its accepted terms.
func accepted(_ negotiate: (KernelRequest) -> KernelInit.Outcome, offered: KernelFeatures, flags2: UInt32? = nil,
              readahead: UInt32 = 1 << 20) throws -> (KernelConnection, buildfs_fuse_init_out) {
    var result: (KernelConnection, buildfs_fuse_init_out)?
    let offer = initIn(minor: 45, flags: offered, flags2: flags2, readahead: readahead)
    try withRequest(opcode: .initialize, arguments: bytes(of: offer)) { request in
        if case .accepted(let connection, let reply) = negotiate(request) { result = (connection, reply) }
    }
    return try #require(result)
}

func withDirectoryBuffer(capacity: Int, _ body: (inout DirectoryEntries) -> Void) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 8)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0xFF)  // padding must be written, not assumed
    var entries = DirectoryEntries(into: buffer)
    body(&entries)
}
