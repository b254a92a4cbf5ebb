import BuildFSCore
import CFuseKernel
import Glibc

/// One open /dev/fuse descriptor of a mounted session. Requests come in by
/// read, one per read; replies go out by one write each. A reply must go
/// to the channel its request came from: the kernel looks the request up
/// among those read through that descriptor. Each serving thread has its
/// own channel (`clone()`), so threads never wait for each other here.
///
/// Replies return 0 or the errno of a failed write, which is logged: the
/// kernel refused the reply (a bug in its layout) or the session is gone.
final class KernelChannel: Sendable {
    let descriptor: Int32

    /// Takes ownership of `descriptor` (closed with the channel).
    init(adopting descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// A new descriptor on the same session (FUSE_DEV_IOC_CLONE): requests
    /// are handed to whichever descriptor reads first.
    func clone() throws(SystemCallError) -> KernelChannel {
        let fd = try sys("open /dev/fuse") { open("/dev/fuse", O_RDWR | O_CLOEXEC) }
        let channel = KernelChannel(adopting: fd)
        try sys("ioctl FUSE_DEV_IOC_CLONE") { buildfs_fuse_dev_clone(fd, descriptor) }
        return channel
    }

    /// Waits for the next request and reads it into `buffer` (which must
    /// hold max_write plus a page: the kernel refuses smaller reads). nil
    /// once the session is unmounted or aborted. A request whose header
    /// does not add up is refused with EINVAL here and skipped.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> KernelRequest? {
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count <= 0 {
                switch count == 0 ? ENODEV : errno {
                // ENOENT: the request this read was woken for was
                // interrupted and withdrawn before it could be copied.
                case EAGAIN, ENOENT: continue
                // EINTR: woken on purpose (KernelSession.stop), for the
                // caller to decide.
                // ENODEV: unmounted; ECONNABORTED: aborted (with ABORT_ERROR).
                case ENODEV, ECONNABORTED: return nil
                case let code: throw SystemCallError("read /dev/fuse", code: code)
                }
            }
            do {
                return try KernelRequest(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            } catch {
                daemonLog("malformed FUSE request refused: \(error.reason)")
                if let unique = error.unique { reply(unique: unique, error: EINVAL) }
            }
        }
    }

    /// Replies to a READ with up to `size` bytes of `fd` from `offset`,
    /// moved from the file's page cache into the reply by splice, without
    /// a copy through this process. Fewer bytes when the file ends sooner
    /// (a short reply is how the reader learns of the end). Copies with
    /// pread instead when splicing cannot be done (not a regular file, a
    /// file system without splice, a file that shrank meanwhile, or a READ
    /// the pipe cannot hold: a pipe grows to at most fs.pipe-max-size,
    /// 1 MiB, and a 1 MiB READ needs two pages more).
    @discardableResult
    func replyData(unique: UInt64, fd: Int32, offset: Int64, size: Int) -> Int32 {
        var status = stat()
        if fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG {
            let available = max(0, min(Int64(size), Int64(status.st_size) - offset))
            if available == 0 { return reply(unique: unique, error: 0) }
            if let pipe = SplicePipe.ofThisThread(holding: SplicePipe.capacity(forReplyOf: Int(available), at: offset)),
               let result = splice(unique: unique, from: fd, offset: offset, count: Int(available), through: pipe) {
                return result
            }
        }
        return copy(unique: unique, from: fd, offset: offset, size: size)
    }

    /// Tells the kernel that what it caches of `node`'s attributes is stale
    /// (its next stat asks again). Safe from inside a request on that
    /// node: attributes only, no page lock is taken.
    @discardableResult
    func invalidateAttributes(of node: UInt64) -> Int32 {
        let notice = buildfs_fuse_notify_inval_inode_out(ino: node, off: -1, len: 0)
        return withUnsafeBytes(of: notice) { bytes in
            send(unique: 0, error: -BUILDFS_FUSE_NOTIFY_INVAL_INODE, count: 1) { _ in bytes }
        }
    }

    /// Puts `pieces`, in order, into the kernel's page cache of `node` from
    /// offset 0 (FUSE_NOTIFY_STORE): reads of those pages then never come
    /// here. The kernel overwrites whatever those pages hold, without
    /// taking the inode's lock: the caller makes sure nobody writes the file
    /// meanwhile (SnapshotSide.fillPageCache). ENOENT: the kernel has
    /// forgotten the inode.
    @discardableResult
    func storeInPageCache(of node: UInt64, pieces: [UnsafeRawBufferPointer]) -> Int32 {
        let size = pieces.reduce(0) { $0 + $1.count }
        let notice = buildfs_fuse_notify_store_out(nodeid: node, offset: 0, size: UInt32(size), padding: 0)
        return withUnsafeBytes(of: notice) { head in
            send(unique: 0, error: -BUILDFS_FUSE_NOTIFY_STORE, count: pieces.count + 1) { $0 == 0 ? head : pieces[$0 - 1] }
        }
    }

    // MARK: Passthrough backing files

    /// Registers `fd` (O_PATH will do) as a backing file for passthrough
    /// opens: the id to reply in open_out with FOPEN_PASSTHROUGH. Needs
    /// CAP_SYS_ADMIN in the initial user namespace.
    func openBacking(fd: Int32) throws(SystemCallError) -> Int32 {
        try sys("ioctl FUSE_DEV_IOC_BACKING_OPEN") { buildfs_fuse_backing_open(descriptor, fd) }
    }

    func closeBacking(id: Int32) throws(SystemCallError) {
        try sys("ioctl FUSE_DEV_IOC_BACKING_CLOSE") { buildfs_fuse_backing_close(descriptor, id) }
    }

    // MARK: Writing replies

    static let outHeaderSize = MemoryLayout<buildfs_fuse_out_header>.size

    /// Writes the out header and `count` pieces in one writev (the kernel
    /// takes a reply in one write). The iovecs live on the stack.
    func send(unique: UInt64, error: Int32, count: Int, _ piece: (Int) -> UnsafeRawBufferPointer) -> Int32 {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: count + 1) { vectors in
            var length = Self.outHeaderSize
            for index in 0..<count {
                let bytes = piece(index)
                vectors[index + 1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                                           iov_len: bytes.count)
                length += bytes.count
            }
            var header = buildfs_fuse_out_header(len: UInt32(length), error: -error, unique: unique)
            return withUnsafeMutableBytes(of: &header) { headerBytes in
                vectors[0] = iovec(iov_base: headerBytes.baseAddress, iov_len: headerBytes.count)
                let written = writev(descriptor, vectors.baseAddress, Int32(count + 1))
                return written < 0 ? replyFailed(errno, unique: unique) : 0
            }
        }
    }

    /// ENOENT is normal: the request was interrupted and the kernel
    /// already answered the caller (also RELEASE racing an unmount).
    /// Anything else is logged once per failure.
    private func replyFailed(_ code: Int32, unique: UInt64) -> Int32 {
        if code == ENOENT { return 0 }
        daemonLog("reply to FUSE request \(unique) failed: \(String(cString: strerror(code)))")
        return code
    }

    /// The header, then the file's bytes, into the pipe; then the pipe's
    /// contents into /dev/fuse as one reply. nil (pipe emptied again) when
    /// the file gave fewer bytes than `count`: the caller copies instead.
    private func splice(unique: UInt64, from fd: Int32, offset: Int64, count: Int, through pipe: SplicePipe) -> Int32? {
        let total = Self.outHeaderSize + count
        var header = buildfs_fuse_out_header(len: UInt32(total), error: 0, unique: unique)
        guard withUnsafeBytes(of: &header, { write(pipe.writeEnd, $0.baseAddress, $0.count) }) == Self.outHeaderSize else {
            pipe.drain()
            return nil
        }
        var position = offset
        var moved = 0
        while moved < count {
            let n = buildfs_splice(fd, &position, pipe.writeEnd, nil, count - moved, UInt32(BUILDFS_SPLICE_F_NONBLOCK))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                pipe.drain()
                return nil
            }
            moved += n
        }
        while true {
            let n = buildfs_splice(pipe.readEnd, nil, descriptor, nil, total, 0)
            if n < 0 && errno == EINTR { continue }
            if n == total { return 0 }
            // The kernel takes all of a reply or none of it.
            let code = n < 0 ? errno : EIO
            pipe.drain()
            return replyFailed(code, unique: unique)
        }
    }

    /// The fallback: pread until `size` bytes or the end, then one writev.
    private func copy(unique: UInt64, from fd: Int32, offset: Int64, size: Int) -> Int32 {
        withUnsafeTemporaryAllocation(byteCount: size, alignment: 16) { buffer in
            let filled = readReplyData(of: fd, at: offset, into: buffer)
            if filled < 0 { return reply(unique: unique, error: Int32(-filled)) }
            return reply(unique: unique, bytes: UnsafeRawBufferPointer(rebasing: buffer[..<filled]))
        }
    }
}

/// The pipe a thread splices READ replies through, made on the thread's
/// first spliced reply, grown as replies need, closed when the thread ends.
/// Per thread because a pipe holds one reply at a time.
final class SplicePipe {
    let readEnd: Int32
    let writeEnd: Int32
    private var capacity: Int

    private init(readEnd: Int32, writeEnd: Int32) {
        self.readEnd = readEnd
        self.writeEnd = writeEnd
        capacity = Int(buildfs_pipe_size(writeEnd))
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Releases a thread's pipe when the thread exits.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { pipe in
            if let pipe { Unmanaged<SplicePipe>.fromOpaque(pipe).release() }
        }
        precondition(created == 0, "pthread_key_create failed")
        return key
    }()

    /// This thread's pipe, able to hold `bytes`; nil when no pipe can be
    /// made or grown that far (the caller copies instead).
    static func ofThisThread(holding bytes: Int) -> SplicePipe? {
        let pipe: SplicePipe
        if let existing = pthread_getspecific(key) {
            pipe = Unmanaged<SplicePipe>.fromOpaque(existing).takeUnretainedValue()
        } else {
            var ends: [Int32] = [-1, -1]
            guard buildfs_pipe_cloexec_nonblocking(&ends) == 0 else { return nil }
            pipe = SplicePipe(readEnd: ends[0], writeEnd: ends[1])
            pthread_setspecific(key, Unmanaged.passRetained(pipe).toOpaque())
        }
        if pipe.capacity < bytes {
            let grown = buildfs_set_pipe_size(pipe.writeEnd, Int32(clamping: bytes))
            guard grown >= bytes else { return nil }
            pipe.capacity = Int(grown)
        }
        return pipe
    }

    /// The pipe capacity a spliced reply of `count` file bytes from
    /// `offset` takes: a pipe holds pages, not bytes. The header fills one
    /// page of its own; the data fills every page of the file it touches.
    static func capacity(forReplyOf count: Int, at offset: Int64) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let dataPages = (Int(offset % Int64(page)) + count + page - 1) / page
        return (1 + dataPages) * page
    }

    /// Empties the pipe after a reply that did not go through.
    func drain() {
        var scratch = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &scratch, { read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
    }
}
