import Glibc

/// Where the answer to one kernel request goes: the transport the request
/// came in on. The file system replies only through this (Request holds
/// one), so it never knows whether a request came over /dev/fuse
/// (KernelChannel) or in an io_uring entry (KernelRingEntry).
///
/// Each reply returns 0, or the errno of a reply the kernel refused (which
/// the sink logs).
protocol ReplySink: AnyObject, Sendable {
    /// The one way a reply goes out: the out header (`error` 0 is success,
    /// else the errno the caller gets) and `count` pieces, in order, as one
    /// reply. Every shape of reply below comes down to this.
    func send(unique: UInt64, error: Int32, count: Int, _ piece: (Int) -> UnsafeRawBufferPointer) -> Int32

    /// A READ's reply: up to `size` bytes of `fd` from `offset`, fewer when
    /// the file ends sooner; a failed read is answered with its error.
    @discardableResult
    func replyData(unique: UInt64, fd: Int32, offset: Int64, size: Int) -> Int32

    /// Not a reply: tells the kernel that what it caches of `node`'s
    /// attributes is stale. Notifications always go over /dev/fuse.
    @discardableResult
    func invalidateAttributes(of node: UInt64) -> Int32

    /// Not a reply: puts `pieces` into `node`'s page cache from offset 0
    /// (KernelChannel.storeInPageCache). Over /dev/fuse too.
    @discardableResult
    func storeInPageCache(of node: UInt64, pieces: [UnsafeRawBufferPointer]) -> Int32
}

extension ReplySink {
    /// A reply without payload: `error` 0 is success (RELEASE, FLUSH,
    /// UNLINK...), else the errno the caller gets.
    @discardableResult
    func reply(unique: UInt64, error: Int32) -> Int32 {
        send(unique: unique, error: error, count: 0) { _ in UnsafeRawBufferPointer(start: nil, count: 0) }
    }

    /// A successful reply of one fixed struct (entry_out, attr_out, ...).
    @discardableResult
    func reply<T: BitwiseCopyable>(unique: UInt64, _ value: T) -> Int32 {
        withUnsafeBytes(of: value) { bytes in send(unique: unique, error: 0, count: 1) { _ in bytes } }
    }

    /// A successful reply of two fixed structs (CREATE: entry_out, open_out).
    @discardableResult
    func reply<A: BitwiseCopyable, B: BitwiseCopyable>(unique: UInt64, _ first: A, _ second: B) -> Int32 {
        withUnsafeBytes(of: first) { a in
            withUnsafeBytes(of: second) { b in send(unique: unique, error: 0, count: 2) { $0 == 0 ? a : b } }
        }
    }

    /// A successful reply of bytes (a directory listing, a link target, an
    /// xattr value, read data).
    @discardableResult
    func reply(unique: UInt64, bytes: UnsafeRawBufferPointer) -> Int32 {
        send(unique: unique, error: 0, count: 1) { _ in bytes }
    }

    /// A successful reply gathered from several pieces, in order.
    @discardableResult
    func reply(unique: UInt64, pieces: [UnsafeRawBufferPointer]) -> Int32 {
        send(unique: unique, error: 0, count: pieces.count) { pieces[$0] }
    }
}

extension KernelChannel: ReplySink {}

/// A READ's data read the plain way (the ring's way, and /dev/fuse's when
/// it cannot splice): `fd`'s bytes from `offset` into `buffer` until it is
/// full or the file ends. The count, or minus the errno of a failed read.
func readReplyData(of fd: Int32, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
    var filled = 0
    while filled < buffer.count {
        let n = pread(fd, buffer.baseAddress! + filled, buffer.count - filled, off_t(offset) + off_t(filled))
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return -Int(errno) }
        if n == 0 { break }
        filled += n
    }
    return filled
}
