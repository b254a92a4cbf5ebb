import CZstd

/// A zstd compression context. Not thread-safe: use one per thread, e.g.
/// through a `ContextPool`.
public final class ZstdCompressor: @unchecked Sendable {
    private let context: OpaquePointer
    public let level: Int32

    public init(level: Int32) {
        context = ZSTD_createCCtx()!
        self.level = level
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `source` into `destination`; nil when the result would not
    /// fit, which callers use to mean "does not pay, store raw".
    public func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let written = ZSTD_compressCCtx(context, destination.baseAddress, destination.count,
                                        source.baseAddress, source.count, level)
        return ZSTD_isError(written) != 0 ? nil : written
    }
}

/// A zstd decompression context. Not thread-safe.
public final class ZstdDecompressor: @unchecked Sendable {
    private let context: OpaquePointer

    public init() { context = ZSTD_createDCtx()! }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `source` into `destination`; the byte count, or nil when
    /// the frame is malformed or does not fit.
    public func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let written = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count,
                                          source.baseAddress, source.count)
        return ZSTD_isError(written) != 0 ? nil : written
    }
}

public enum Zstd {
    /// zstd's own level bounds (1 fast ... 19 slow; higher needs --ultra).
    public static let levels: ClosedRange<Int32> = 1...19
    public static let defaultLevel: Int32 = 3

    public static func compressBound(_ size: Int) -> Int { ZSTD_compressBound(size) }
}
