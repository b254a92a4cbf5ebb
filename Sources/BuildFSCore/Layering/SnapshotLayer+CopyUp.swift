import Glibc

extension SnapshotLayer {
    /// Copies up the stub at `path` (a path to the file itself, such as
    /// an inode's /proc/self/fd path): fills it with its bytes from the
    /// store and makes it a plain file. Killed midway, the stub keeps its
    /// mark and stays a stub. Its mtime is put back: copying up is not a
    /// change.
    public func copyUp(_ path: String, stub: StubReference) throws {
        let list = try chunkList(of: stub)
        store.prefetch(list.map(\.id))
        let fd = try sys("open") { Glibc.open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        var before = stat()
        try sys("fstat") { fstat(fd, &before) }
        var offset: off_t = 0
        for ref in list {
            let bytes = try chunk(ref)
            let written = try bytes.withUnsafeBytes { buffer throws(SystemCallError) in
                try sys("pwrite") { pwrite(fd, buffer.baseAddress, buffer.count, offset) }
            }
            guard written == bytes.count else { throw SystemCallError("pwrite", code: EIO) }
            offset += off_t(bytes.count)
        }
        var times = [before.st_atim, before.st_mtim]
        try sys("futimens") { futimens(fd, &times) }
        try UpperLayout.clearStub(path)
        counters.filesCopiedUp.add(1, ordering: .relaxed)
    }
}

