/// A block of a pack file: a 16-byte header, then the block's content,
/// zstd-compressed unless compression does not pay. A block holds either one
/// large object or several small ones back to back, so that small files are
/// compressed together (compressed one by one they lose the cross-file
/// context zstd needs: on five CI runs of a C build tree, chunk-by-chunk
/// stores came out larger than five separate tar.zst archives).
///
///     0..<4   magic "BFSb"
///     4       format version (1)
///     5       codec: 0 raw, 1 zstd
///     6..<8   reserved, zero
///     8..<16  content length, little-endian UInt64
///     16...   payload
///
/// Blocks carry no hash: each object sliced out of a block is checked
/// against its id by the store.
public enum BlockCodec {
    public static let headerSize = 16
    static let magic: [UInt8] = Array("BFSb".utf8)
    static let version: UInt8 = 1

    /// No object or block is larger than this: the biggest are the trees of
    /// huge directories. A header claiming more is damage or an attack.
    public static let maxContentLength = 256 * 1024 * 1024

    enum Codec: UInt8 { case raw = 0, zstd = 1 }

    /// The most bytes a block with `contentLength` bytes of content can take.
    public static func maxEncodedLength(_ contentLength: Int) -> Int {
        headerSize + max(contentLength, Zstd.compressBound(contentLength))
    }

    public static func encode(_ content: UnsafeRawBufferPointer, compressor: ZstdCompressor) -> [UInt8] {
        // Compression must save at least 1/32 of the bytes to be worth a
        // decompression on every read; otherwise the block is stored raw.
        let budget = content.count - content.count / 32 - 1
        return [UInt8](unsafeUninitializedCapacity: headerSize + content.count) { buffer, count in
            let out = UnsafeMutableRawBufferPointer(buffer)
            var codec = Codec.raw
            var payload = content.count
            if budget > 0,
               let compressed = compressor.compress(
                   content, into: UnsafeMutableRawBufferPointer(rebasing: out[headerSize..<headerSize + budget])) {
                codec = .zstd
                payload = compressed
            } else if content.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: out[headerSize...]).copyMemory(from: content)
            }
            writeHeader(into: out, codec: codec, contentLength: content.count)
            count = headerSize + payload
        }
    }

    static func writeHeader(into out: UnsafeMutableRawBufferPointer, codec: Codec, contentLength: Int) {
        for i in 0..<4 { out[i] = magic[i] }
        out[4] = version
        out[5] = codec.rawValue
        out[6] = 0
        out[7] = 0
        var length = UInt64(contentLength)
        for i in 8..<16 {
            out[i] = UInt8(truncatingIfNeeded: length)
            length >>= 8
        }
    }

    /// Decodes a block. Throws `.corruptObject` naming `objectID` (the object
    /// being read) for anything malformed.
    public static func decode(_ stored: UnsafeRawBufferPointer, objectID: ObjectID,
                              decompressor: ZstdDecompressor) throws -> [UInt8] {
        func corrupt(_ reason: String) -> BuildFSError { .corruptObject(id: objectID.hex, reason: reason) }
        guard stored.count >= headerSize else { throw corrupt("truncated block header") }
        guard Array(stored[0..<4]) == magic else { throw corrupt("bad block magic") }
        guard stored[4] == version else { throw corrupt("unknown block format version \(stored[4])") }
        guard let codec = Codec(rawValue: stored[5]), stored[6] == 0, stored[7] == 0 else {
            throw corrupt("unknown codec \(stored[5])")
        }
        var length64: UInt64 = 0
        for i in (8..<16).reversed() { length64 = length64 << 8 | UInt64(stored[i]) }
        guard length64 <= UInt64(maxContentLength) else {
            throw corrupt("block claims \(length64) bytes, more than \(maxContentLength)")
        }
        let length = Int(length64)
        let payload = UnsafeRawBufferPointer(rebasing: stored[headerSize...])
        switch codec {
        case .raw:
            guard payload.count == length else { throw corrupt("raw block is \(payload.count) bytes, header says \(length)") }
            return Array(payload)
        case .zstd:
            guard payload.count < length else { throw corrupt("compressed block larger than its content") }
            var produced = 0
            let content = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
                produced = decompressor.decompress(payload, into: UnsafeMutableRawBufferPointer(buffer)) ?? -1
                count = max(produced, 0)
            }
            guard produced == length else { throw corrupt("zstd block does not decode to \(length) bytes") }
            return content
        }
    }
}
