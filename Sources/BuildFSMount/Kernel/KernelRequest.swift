import CFuseKernel
import Glibc

/// One request as the kernel wrote it into a receive buffer, read in place:
/// valid until that buffer receives the next request (copy out what must
/// live longer). Every access is bounds-checked against the request's own
/// length; a request that does not add up is refused with EINVAL by the
/// channel, never read past.
///
/// Layout: fuse_in_header (40 bytes), the opcode's arguments (a fixed
/// struct, then NUL-terminated names or data), then `total_extlen` * 8
/// bytes of extensions (security context, supplementary groups).
struct KernelRequest {
    let header: buildfs_fuse_in_header
    /// The opcode's arguments: after the header, before the extensions.
    let arguments: UnsafeRawBufferPointer
    /// The extensions at the request's end (empty unless the daemon took
    /// SECURITY_CTX or CREATE_SUPP_GROUP).
    let extensions: UnsafeRawBufferPointer

    /// A request whose header does not add up. `unique` is there to refuse
    /// it with when the header could be read at all.
    struct Malformed: Error, Equatable {
        var unique: UInt64?
        var reason: String
    }

    static let headerSize = MemoryLayout<buildfs_fuse_in_header>.size

    /// Reads the request that fills `bytes` (exactly what one read of
    /// /dev/fuse returned).
    init(_ bytes: UnsafeRawBufferPointer) throws(Malformed) {
        guard bytes.count >= Self.headerSize, let base = bytes.baseAddress else {
            throw Malformed(unique: nil, reason: "\(bytes.count) bytes, shorter than a request header")
        }
        let header = base.loadUnaligned(as: buildfs_fuse_in_header.self)
        guard Int(header.len) == bytes.count else {
            throw Malformed(unique: header.unique, reason: "header says \(header.len) bytes, read \(bytes.count)")
        }
        let extensionBytes = Int(header.total_extlen) * 8
        guard extensionBytes <= bytes.count - Self.headerSize else {
            throw Malformed(unique: header.unique, reason: "\(extensionBytes) bytes of extensions in \(bytes.count)")
        }
        self.header = header
        arguments = UnsafeRawBufferPointer(rebasing: bytes[Self.headerSize..<(bytes.count - extensionBytes)])
        extensions = UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - extensionBytes)...])
    }

    /// nil for an opcode this protocol version does not name.
    var opcode: KernelOpcode? { KernelOpcode(rawValue: header.opcode) }
    var unique: UInt64 { header.unique }
    /// The inode the request is about (the parent directory for name operations).
    var nodeID: UInt64 { header.nodeid }
    var uid: uid_t { header.uid }
    var gid: gid_t { header.gid }
    var pid: pid_t { pid_t(bitPattern: header.pid) }

    /// The fixed argument struct at the start of the arguments; nil when
    /// the request is too short for it.
    func body<T: BitwiseCopyable>(as type: T.Type) -> T? {
        var reader = reader()
        return reader.read(type)
    }

    /// A reader that walks the arguments in order: struct, names, data.
    func reader() -> KernelArgumentReader { KernelArgumentReader(arguments) }

}

/// Walks a request's arguments front to back; each step returns nil
/// (and consumes nothing) when what it asks for is not all there.
struct KernelArgumentReader {
    private(set) var remaining: UnsafeRawBufferPointer

    init(_ arguments: UnsafeRawBufferPointer) { remaining = arguments }

    /// A fixed struct. `size` below the struct's size reads an older,
    /// shorter form of it (SETXATTR without SETXATTR_EXT sends 8 of
    /// fuse_setxattr_in's 16 bytes): the missing fields read as zero.
    mutating func read<T: BitwiseCopyable>(_ type: T.Type, size: Int = MemoryLayout<T>.size) -> T? {
        precondition(size <= MemoryLayout<T>.size)
        guard remaining.count >= size, let base = remaining.baseAddress else { return nil }
        remaining = UnsafeRawBufferPointer(rebasing: remaining[size...])
        if size == MemoryLayout<T>.size { return base.loadUnaligned(as: T.self) }
        return withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { slot in
            let raw = UnsafeMutableRawPointer(slot.baseAddress!)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
            raw.copyMemory(from: base, byteCount: size)
            return raw.load(as: T.self)
        }
    }

    /// A NUL-terminated name, pointing into the request (valid as long as
    /// the request); nil when no NUL comes before the arguments end.
    mutating func name() -> UnsafePointer<CChar>? {
        guard let base = remaining.baseAddress, let nul = memchr(base, 0, remaining.count) else { return nil }
        let length = base.distance(to: UnsafeRawPointer(nul))
        remaining = UnsafeRawBufferPointer(rebasing: remaining[(length + 1)...])
        return base.assumingMemoryBound(to: CChar.self)
    }

    /// The next `count` bytes (a write's data, an xattr value).
    mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining.count >= count else { return nil }
        let taken = UnsafeRawBufferPointer(rebasing: remaining[..<count])
        remaining = UnsafeRawBufferPointer(rebasing: remaining[count...])
        return taken
    }
}
