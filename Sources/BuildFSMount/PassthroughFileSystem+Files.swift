import BuildFSCore
import CLinuxCalls
import Glibc

/// File contents, served one of three ways.
///
/// With passthrough (PassthroughFiles: mounts without a snapshot, granted at
/// INIT and accepted for the upper file system), every OPEN and CREATE of
/// an upper file is answered with its backing id, and its reads, writes
/// and mmaps never come here.
///
/// Without it, a root daemon serves files of a mount without a snapshot
/// without opens: it answers the kernel's first OPEN with ENOSYS, and from then on the kernel opens and
/// closes files on its own (FUSE "no open" mode) and sends reads and writes
/// without a handle (fh 0). Every open() and close() is then free of round
/// trips (a warm walk that reads every file made two per file, more than
/// native needs to read the file), and pages are kept across opens, which
/// is what the daemon would ask for anyway (see `openFile`). Each read or
/// write reopens the upper file through its inode's O_PATH descriptor for
/// that one request. In this mode the kernel sends no RELEASE, not even for
/// create(), so create() keeps no descriptor either.
///
/// Over a snapshot every OPEN comes here: a small stub opened for reading
/// is put into the page cache whole (PageCacheFiller), which is only safe
/// when every open for writing copies its stub up first.
///
/// A daemon without CAP_DAC_OVERRIDE (not root, or root with it dropped)
/// could not reopen a file that is no longer writable by mode (`cp` of a
/// read-only file writes into the copy it made read-only): it serves real
/// opens, with the upper descriptor as the handle (none for a stub opened
/// read-only: it is read from the store by inode).
extension PassthroughFileSystem {
    /// The flags to open the upper file with. The kernel sends every write
    /// with its offset (the end of the file for O_APPEND): an O_APPEND upper
    /// descriptor would move that offset again, so it is dropped. O_NOFOLLOW
    /// would refuse the /proc path the file is reopened through.
    func openFlags(_ requested: Int32) -> Int32 {
        requested & ~(O_NOFOLLOW | O_APPEND) | O_CLOEXEC
    }

    func open(_ request: Request, _ ino: UInt64, flags: Int32) {
        let passthrough = table.passthrough.isEnabled
        if servesFilesWithoutOpens && !passthrough {
            request.reply(error: ENOSYS)
            return
        }
        replying(request) {
            let inode = try table.inode(ino)
            let readOnly = flags & O_ACCMODE == O_RDONLY
            if let backing = passthrough ? table.passthrough.backingID(for: inode) : nil {
                if !readOnly { try dropSetIDBeforePassthroughWrites(inode, request) }
                request.reply(open: passthroughFile(backing, flags: flags))
                return
            }
            let isStub = readOnly ? try snapshot?.stubContent(inode) != nil : false
            if !readOnly { try snapshot?.copyUpIfStub(inode) }
            if isStub { filler?.opened(inode, request: request) }
            let descriptor = servesFilesWithoutOpens || isStub
                ? nil : try sys("open") { Glibc.open(inode.procPath, openFlags(flags)) }
            request.reply(open: openFile(RegularFileHandle(descriptor: descriptor), flags: flags))
        }
    }

    /// An open whose reads and writes go straight to the upper file
    /// (PassthroughFiles): no handle, and FLUSH only where close can fail.
    func passthroughFile(_ backing: Int32, flags: Int32) -> OpenFile {
        OpenFile(noFlush: flags & O_ACCMODE == O_RDONLY || upperCloseReportsNothing, backingID: backing)
    }

    /// Passthrough writes never reach the daemon, so the kernel's request
    /// to clear setuid/setgid on write (dropSetID) cannot come with them:
    /// they are cleared when such a file is opened for writing by a caller
    /// without CAP_FSETID (the kernel clears them at its first write; here
    /// an open that writes nothing clears them too).
    private func dropSetIDBeforePassthroughWrites(_ inode: Inode, _ request: Request) throws {
        let mode = try statOf(inode).st_mode
        guard mode & (S_ISUID | S_ISGID) != 0, !request.callerHas(capability: Capabilities.fileSetID) else { return }
        if try dropSetID(inode) { request.invalidateAttributes(of: table.number(of: inode)) }
    }

    /// How the kernel caches an open file (in no-open mode, one made by
    /// create()). Pages stay valid across opens (keep_cache): nobody else
    /// writes the file. A write-only descriptor skips the kernel's page
    /// cache (direct_io): its writes go to the daemon straight from the
    /// writer's buffer instead of first being copied into pages that nobody
    /// reads through it (which doubled 1 GiB sequential writes). Safe: the
    /// kernel drops cached pages of the range such a write covers, and a
    /// write-only descriptor cannot be mmapped, so linkers writing through
    /// mmap keep the page cache.
    ///
    /// close() skips the FLUSH round trip (noflush) when it has nothing to
    /// report: a read-only descriptor, or any descriptor on an upper file
    /// system whose close never fails (UpperFileSystemType). Locks need no
    /// FLUSH either: the kernel keeps them itself.
    func openFile(_ handle: RegularFileHandle, flags: Int32) -> OpenFile {
        OpenFile(handle: handle.value, keepCache: true, directIO: flags & O_ACCMODE == O_WRONLY,
                 noFlush: flags & O_ACCMODE == O_RDONLY || upperCloseReportsNothing)
    }

    /// Runs `body` on the request's descriptor if it has one, else on the
    /// upper file reopened with `flags` for this request.
    @discardableResult
    func withDescriptor<R>(_ inode: Inode, _ handle: RegularFileHandle, _ flags: Int32,
                           _ body: (Int32) throws -> R) throws -> R {
        if let fd = handle.descriptor { return try body(fd) }
        let fd = try sys("open") { Glibc.open(inode.procPath, flags | O_CLOEXEC) }
        defer { close(fd) }
        return try body(fd)
    }

    /// A stub is read from the store (a damaged or missing chunk is an I/O
    /// error for the reader and a named error in the log: never wrong
    /// bytes); anything else is replied from the upper file by the
    /// transport (spliced or copied: ReplySink.replyData), which answers a
    /// failed read with its error itself: replying again would answer twice.
    func read(_ request: Request, _ ino: UInt64, _ size: Int, _ offset: off_t, handle: RegularFileHandle) {
        let inode: Inode
        let stub: StubContent?
        do {
            inode = try table.inode(ino)
            stub = try snapshot?.stubContent(inode)
        } catch {
            replyError(request, error)
            return
        }
        if let stub {
            read(request, stub, size, offset)
            return
        }
        do {
            try withDescriptor(inode, handle, O_RDONLY) { fd in request.reply(dataOf: fd, offset: offset, size: size) }
        } catch {
            replyError(request, error)
        }
    }

    /// A read of a stub's bytes from the store.
    func read(_ request: Request, _ stub: StubContent, _ size: Int, _ offset: off_t) {
        guard let snapshot else { return request.reply(error: EIO) }
        do {
            reply(request, with: try stub.read(snapshot.layer, size: size, offset: UInt64(offset)))
            filler?.readLargeStub(stub, upTo: UInt64(offset) + UInt64(size))
        } catch {
            daemonLog("read of snapshot '\(snapshot.layer.key)' failed: \(error)")
            request.reply(error: EIO)
        }
    }

    /// Replies with the pieces' bytes in place.
    private func reply(_ request: Request, with pieces: [StubContent.Piece]) {
        pieces.withBuffers { request.reply(pieces: $0) }
    }

    /// The first write to a stub copies it up. `killSetID`: the kernel asks
    /// the daemon to clear setuid/setgid first (see dropSetID).
    func write(_ request: Request, _ ino: UInt64, _ data: UnsafeRawBufferPointer, _ offset: off_t,
               handle: RegularFileHandle, killSetID: Bool = false) {
        replying(request) {
            let inode = try table.inode(ino)
            try snapshot?.copyUpIfStub(inode)
            // The kernel does not expect the mode to change under a write:
            // it is told.
            if killSetID, try dropSetID(inode) { request.invalidateAttributes(of: table.number(of: inode)) }
            let written = try withDescriptor(inode, handle, O_WRONLY) { fd in
                try sys("pwrite") { pwrite(fd, data.baseAddress, data.count, offset) }
            }
            request.reply(written: written)
        }
    }

    /// Called at close. On an upper file system whose close never fails,
    /// ENOSYS tells the kernel to stop sending FLUSH for the whole mount.
    /// Elsewhere (NFS-like upper directories) close-time errors of the
    /// upper file are reported: an open descriptor is checked without
    /// closing it; a reopened one was closed, and checked, by the request
    /// that wrote through it.
    func flush(_ request: Request, handle: RegularFileHandle) {
        if upperCloseReportsNothing {
            request.reply(error: ENOSYS)
            return
        }
        replying(request) {
            if let fd = handle.descriptor {
                let copy = try sys("dup") { dup(fd) }
                if close(copy) != 0 { throw SystemCallError("close") }
            }
            request.replySuccess()
        }
    }

    func release(_ request: Request, handle: RegularFileHandle) {
        if let fd = handle.descriptor { close(fd) }
        request.replySuccess()
    }

    /// A stub has nothing written to sync.
    func fsync(_ request: Request, _ ino: UInt64, dataOnly: Bool, handle: RegularFileHandle) {
        replying(request) {
            let inode = try table.inode(ino)
            if snapshot?.layerState(inode)?.stub == nil {
                try withDescriptor(inode, handle, O_RDONLY) { fd in try sys("fsync") { dataOnly ? fdatasync(fd) : Glibc.fsync(fd) } }
            }
            request.replySuccess()
        }
    }

    /// Allocating (or punching) changes content: a stub is copied up first.
    func fallocate(_ request: Request, _ ino: UInt64, _ mode: Int32, _ offset: off_t, _ length: off_t,
                   handle: RegularFileHandle) {
        replying(request) {
            let inode = try table.inode(ino)
            try snapshot?.copyUpIfStub(inode)
            try withDescriptor(inode, handle, O_WRONLY) { fd in try sys("fallocate") { buildfs_fallocate(fd, mode, offset, length) } }
            request.replySuccess()
        }
    }
}

extension Array where Element == StubContent.Piece {
    /// Runs `body` on the pieces' bytes in place: each chunk's storage is
    /// pinned by one nested closure meanwhile.
    func withBuffers(_ body: ([UnsafeRawBufferPointer]) -> Void) {
        var parts: [UnsafeRawBufferPointer] = []
        parts.reserveCapacity(count)
        func pin(_ next: Int) {
            guard next < count else {
                body(parts)
                return
            }
            self[next].chunk.withUnsafeBytes { chunk in
                let range = self[next].range
                if !range.isEmpty { parts.append(UnsafeRawBufferPointer(rebasing: chunk[range])) }
                pin(next + 1)
            }
        }
        pin(0)
    }
}

/// A regular file's FUSE handle (`fh`): its upper descriptor plus one, so
/// that 0 means "no descriptor" (a stub read from the store, no-open mode,
/// a passthrough open) whatever descriptors the process has open.
/// Directories' handles are DirectoryHandle objects instead
/// (PassthroughFileSystem+Directories).
struct RegularFileHandle {
    let value: UInt64

    init(_ value: UInt64) { self.value = value }

    init(descriptor: Int32?) { value = descriptor.map { UInt64($0) + 1 } ?? 0 }

    var descriptor: Int32? { value == 0 ? nil : Int32(truncatingIfNeeded: value - 1) }
}
