import CFuseKernel
import Glibc

/// One entry of an io_uring queue (KernelRingQueue): the two buffers the
/// daemon gave the kernel at REGISTER, and the sink a request in them is
/// answered through.
///
/// The kernel writes a request into them: its fuse_in_header into the
/// header's `in_out`, its first argument (the opcode's fixed struct, or
/// nothing: LOOKUP, UNLINK, SYMLINK... have an empty one) into `op_in`,
/// every other argument (names, a WRITE's data, extensions) into the
/// payload, and their size into `payload_sz`. The daemon writes the reply
/// into the same buffers: its fuse_out_header into `in_out`, the reply's
/// bytes into the payload, their count into `payload_sz`; COMMIT_AND_FETCH
/// then hands it to the kernel, with the entry for the next request.
///
/// Used by its queue's thread only, one request at a time (hence
/// @unchecked Sendable).
final class KernelRingEntry: ReplySink, @unchecked Sendable {
    /// The 288-byte fuse_uring_req_header.
    let header: UnsafeMutableRawBufferPointer
    /// Room for the largest request arguments or reply the session has.
    let payload: UnsafeMutableRawBufferPointer
    /// The iovec pair REGISTER names: header, payload.
    let vectors: UnsafeMutablePointer<iovec>
    /// Where notifications go: the kernel takes none over the ring.
    private let notifications: KernelChannel?
    private let payloadBuffer: ReceiveBuffer
    /// Whether the request now in the buffers has its reply there.
    private(set) var replied = false

    static let headerSize = MemoryLayout<buildfs_fuse_uring_req_header>.size
    static let operationHeaderOffset = MemoryLayout<buildfs_fuse_uring_req_header>.offset(of: \.op_in)!
    static let operationHeaderSize = Int(BUILDFS_FUSE_URING_OP_IN_OUT_SZ)
    static let bookkeepingOffset = MemoryLayout<buildfs_fuse_uring_req_header>.offset(of: \.ring_ent_in_out)!
    private static let payloadSizeOffset =
        bookkeepingOffset + MemoryLayout<buildfs_fuse_uring_ent_in_out>.offset(of: \.payload_sz)!

    /// The largest contiguous request an entry with `payloadSize` bytes of
    /// payload can hold (what `request(assemblingInto:)` needs).
    static func requestSize(payloadSize: Int) -> Int {
        KernelRequest.headerSize + operationHeaderSize + payloadSize
    }

    init(payloadSize: Int, notifications: KernelChannel?) {
        header = .allocate(byteCount: Self.headerSize, alignment: 16)
        _ = header.initializeMemory(as: UInt8.self, repeating: 0)
        payloadBuffer = ReceiveBuffer(size: payloadSize)
        payload = payloadBuffer.bytes
        vectors = .allocate(capacity: 2)
        vectors.initialize(to: iovec(iov_base: header.baseAddress, iov_len: header.count))
        (vectors + 1).initialize(to: iovec(iov_base: payload.baseAddress, iov_len: payload.count))
        self.notifications = notifications
    }

    deinit {
        header.deallocate()
        vectors.deallocate()
    }

    /// The kernel's bookkeeping for the request in the buffers (commit_id:
    /// the request's unique, which COMMIT_AND_FETCH names).
    var bookkeeping: buildfs_fuse_uring_ent_in_out {
        header.baseAddress!.loadUnaligned(fromByteOffset: Self.bookkeepingOffset, as: buildfs_fuse_uring_ent_in_out.self)
    }

    /// The request now in the buffers, copied into `scratch` as one read of
    /// /dev/fuse delivers it (in header, first argument, other arguments),
    /// so that KernelRequest and the dispatcher serve both transports. The
    /// in header's `len` counts every argument: what the payload does not
    /// hold is the first argument's size. Valid until `scratch` is reused.
    func request(assemblingInto scratch: UnsafeMutableRawBufferPointer) throws(KernelRequest.Malformed) -> KernelRequest {
        replied = false
        let inHeader = header.baseAddress!.loadUnaligned(as: buildfs_fuse_in_header.self)
        let headerSize = KernelRequest.headerSize
        let payloadCount = Int(bookkeeping.payload_sz)
        let firstArgument = Int(inHeader.len) - headerSize - payloadCount
        guard payloadCount <= payload.count, (0...Self.operationHeaderSize).contains(firstArgument),
              Int(inHeader.len) <= scratch.count, let target = scratch.baseAddress else {
            throw KernelRequest.Malformed(unique: inHeader.unique,
                                          reason: "ring entry: header says \(inHeader.len) bytes, payload \(payloadCount)")
        }
        target.copyMemory(from: header.baseAddress!, byteCount: headerSize)
        (target + headerSize).copyMemory(from: header.baseAddress! + Self.operationHeaderOffset, byteCount: firstArgument)
        (target + headerSize + firstArgument).copyMemory(from: payload.baseAddress!, byteCount: payloadCount)
        return try KernelRequest(UnsafeRawBufferPointer(rebasing: scratch[..<Int(inHeader.len)]))
    }

    // MARK: ReplySink: the reply goes into the buffers, committed by the queue

    /// No splice into a ring: the file's bytes are read straight into the
    /// payload, until `size` or the file's end.
    @discardableResult
    func replyData(unique: UInt64, fd: Int32, offset: Int64, size: Int) -> Int32 {
        let target = UnsafeMutableRawBufferPointer(rebasing: payload[..<min(size, payload.count)])
        let filled = readReplyData(of: fd, at: offset, into: target)
        if filled < 0 { return reply(unique: unique, error: Int32(-filled)) }
        return finish(unique: unique, error: 0, payloadCount: filled)
    }

    @discardableResult
    func invalidateAttributes(of node: UInt64) -> Int32 {
        notifications?.invalidateAttributes(of: node) ?? ENOTCONN
    }

    @discardableResult
    func storeInPageCache(of node: UInt64, pieces: [UnsafeRawBufferPointer]) -> Int32 {
        notifications?.storeInPageCache(of: node, pieces: pieces) ?? ENOTCONN
    }

    /// Copies `count` pieces into the payload, one after the other. A reply
    /// larger than the payload (the kernel never asks for one) becomes EIO.
    func send(unique: UInt64, error: Int32, count: Int, _ piece: (Int) -> UnsafeRawBufferPointer) -> Int32 {
        var filled = 0
        for index in 0..<count {
            let bytes = piece(index)
            guard filled + bytes.count <= payload.count else {
                daemonLog("reply to FUSE request \(unique) larger than the ring's payload (\(payload.count) bytes)")
                return finish(unique: unique, error: EIO, payloadCount: 0)
            }
            if let source = bytes.baseAddress, !bytes.isEmpty {
                (payload.baseAddress! + filled).copyMemory(from: source, byteCount: bytes.count)
            }
            filled += bytes.count
        }
        return finish(unique: unique, error: error, payloadCount: filled)
    }

    /// The out header and the payload's size, after the payload: the reply
    /// is complete. A second reply to the same request is dropped (logged).
    private func finish(unique: UInt64, error: Int32, payloadCount: Int) -> Int32 {
        guard !replied else {
            daemonLog("second reply to FUSE request \(unique) dropped")
            return EALREADY
        }
        replied = true
        let out = buildfs_fuse_out_header(len: UInt32(KernelChannel.outHeaderSize + payloadCount), error: -error,
                                          unique: unique)
        header.baseAddress!.storeBytes(of: out, as: buildfs_fuse_out_header.self)
        header.baseAddress!.storeBytes(of: UInt32(error == 0 ? payloadCount : 0), toByteOffset: Self.payloadSizeOffset,
                                       as: UInt32.self)
        return 0
    }
}
