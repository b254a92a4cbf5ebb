/// Content-defined chunking with a gear rolling hash (FastCDC, normalized
/// level 2): a cut point depends only on the bytes just before it, so an
/// insertion changes only the chunks around it and the rest dedup.
///
/// The gear table and masks are part of the store format: changing them moves
/// every boundary and defeats dedup against existing snapshots.
public enum FastCDC {
    /// No cut before this many bytes (except at the end of a file).
    public static let minSize = 16 * 1024
    /// The size chunks are normalized around.
    public static let averageSize = 64 * 1024
    /// Always cut here.
    public static let maxSize = 256 * 1024

    // The hash shifts left, so its top bits depend on the most recent bytes
    // (bit 63 on the last 64). Before the average size a cut needs 18 zero
    // top bits (harder), after it 14 (easier): chunk sizes bunch near 64 KiB.
    static let maskBeforeAverage: UInt64 = ~0 << 46
    static let maskAfterAverage: UInt64 = ~0 << 50

    /// 256 pseudo-random words from splitmix64 with a fixed seed.
    static let gear: [UInt64] = {
        var state: UInt64 = 0x6275_696C_6466_7331 // "buildfs1"
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()

    /// The length of the first chunk of `data`. `data` must hold at least
    /// `maxSize` bytes unless it reaches the end of the file.
    public static func cutPoint(_ data: UnsafeRawBufferPointer) -> Int {
        var end = data.count
        if end <= minSize { return end }
        if end > maxSize { end = maxSize }
        let normal = min(averageSize, end)
        return gear.withUnsafeBufferPointer { table -> Int in
            var hash: UInt64 = 0
            var i = minSize
            while i < normal {
                hash = (hash << 1) &+ table[Int(data[i])]
                if hash & maskBeforeAverage == 0 { return i + 1 }
                i += 1
            }
            while i < end {
                hash = (hash << 1) &+ table[Int(data[i])]
                if hash & maskAfterAverage == 0 { return i + 1 }
                i += 1
            }
            return end
        }
    }

    /// Lengths of all chunks of a whole in-memory buffer.
    public static func chunkLengths(_ data: UnsafeRawBufferPointer) -> [Int] {
        var lengths: [Int] = []
        var offset = 0
        while offset < data.count {
            let length = cutPoint(UnsafeRawBufferPointer(rebasing: data[offset...]))
            lengths.append(length)
            offset += length
        }
        return lengths
    }
}
