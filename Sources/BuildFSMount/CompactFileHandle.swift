import CLinuxCalls
import Glibc

/// A file's handle (name_to_handle_at), kept in 13 bytes: every inode the
/// kernel knows holds one, 200k of them in a big tree. Handles of up to 8
/// bytes (ext4's, xfs's with 32-bit inode numbers) are stored inline,
/// longer ones (at most MAX_HANDLE_SZ, 128) in a heap copy.
struct CompactFileHandle: ~Copyable {
    /// The handle's bytes when `length` <= 8, else the address of a heap copy.
    private let storage: UInt64
    private let type: Int32
    /// 0: the file system gave no handle.
    private let length: UInt8

    private static let inlineBytes = MemoryLayout<UInt64>.size

    private init(type: Int32, length: UInt8, storage: UInt64) {
        (self.type, self.length, self.storage) = (type, length, storage)
    }

    /// No handle: the file is never reopened.
    init() {
        self.init(type: 0, length: 0, storage: 0)
    }

    /// The handle of the file open as `fd` (O_PATH too), or none.
    init(of fd: Int32) {
        var handle = buildfs_file_handle()
        guard buildfs_handle_of(fd, &handle) == 0, handle.handle_bytes > 0, handle.handle_bytes <= UInt8.max else {
            self.init()
            return
        }
        let length = Int(handle.handle_bytes)
        let storage = withUnsafeBytes(of: &handle.f_handle) { bytes in
            if length <= Self.inlineBytes {
                var word: UInt64 = 0
                withUnsafeMutableBytes(of: &word) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[..<length])) }
                return word
            }
            let copy = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 1)
            copy.copyMemory(from: bytes.baseAddress!, byteCount: length)
            return UInt64(UInt(bitPattern: copy))
        }
        self.init(type: handle.handle_type, length: UInt8(handle.handle_bytes), storage: storage)
    }

    deinit {
        if Int(length) > Self.inlineBytes { UnsafeMutableRawPointer(bitPattern: UInt(storage))?.deallocate() }
    }

    var exists: Bool { length > 0 }

    /// Opens the file by its handle; `mountFD` is any real descriptor on its
    /// file system. -1 (errno set) when the file is gone.
    func open(on mountFD: Int32, flags: Int32) -> Int32 {
        var handle = buildfs_file_handle()
        handle.handle_type = type
        handle.handle_bytes = UInt32(length)
        let length = Int(length)
        withUnsafeMutableBytes(of: &handle.f_handle) { bytes in
            if length <= Self.inlineBytes {
                withUnsafeBytes(of: storage) { bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<length])) }
            } else {
                bytes.baseAddress!.copyMemory(from: UnsafeRawPointer(bitPattern: UInt(storage))!, byteCount: length)
            }
        }
        return buildfs_open_by_handle(mountFD, &handle, flags)
    }
}
