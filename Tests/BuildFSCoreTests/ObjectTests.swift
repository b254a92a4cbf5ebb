@testable import BuildFSCore
import Testing
import TestSupport

@Suite struct ObjectIDTests {
    @Test func sha256OfKnownInput() {
        #expect(ObjectID.hashing(Array("abc".utf8)).hex
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hexRoundTrips() {
        let id = ObjectID.hashing(Array("buildfs".utf8))
        #expect(ObjectID(hex: id.hex) == id)
        #expect(ObjectID(hex: "zz") == nil)
        #expect(ObjectID(hex: String(repeating: "g", count: 64)) == nil)
    }
}

@Suite struct BlockCodecTests {
    let compressor = ZstdCompressor(level: 3)
    let decompressor = ZstdDecompressor()
    let someID = ObjectID.hashing([1])

    func roundTrip(_ content: [UInt8]) throws -> (encoded: [UInt8], decoded: [UInt8]) {
        let encoded = content.withUnsafeBytes { BlockCodec.encode($0, compressor: compressor) }
        let decoded = try encoded.withUnsafeBytes { try BlockCodec.decode($0, objectID: someID, decompressor: decompressor) }
        return (encoded, decoded)
    }

    @Test func compressibleContentIsCompressed() throws {
        let content = Array(String(repeating: "hello buildfs ", count: 5000).utf8)
        let (encoded, decoded) = try roundTrip(content)
        #expect(decoded == content)
        #expect(encoded[5] == 1 && encoded.count < content.count / 10)
    }

    @Test func incompressibleContentIsStoredRaw() throws {
        var random = SeededRandom(seed: 3)
        let content = random.bytes(100_000)
        let (encoded, decoded) = try roundTrip(content)
        #expect(decoded == content)
        #expect(encoded[5] == 0 && encoded.count == content.count + BlockCodec.headerSize)
    }

    @Test func emptyContent() throws {
        #expect(try roundTrip([]).decoded == [])
    }

    func decodeError(_ bytes: [UInt8]) -> String? {
        do {
            _ = try bytes.withUnsafeBytes { try BlockCodec.decode($0, objectID: someID, decompressor: decompressor) }
            return nil
        } catch let error as BuildFSError {
            return error.description
        } catch {
            return "\(error)"
        }
    }

    @Test func damagedBlocksAreRefused() throws {
        let good = try roundTrip(Array(String(repeating: "abc", count: 1000).utf8)).encoded
        #expect(decodeError(Array(good.prefix(10)))?.contains("truncated") == true)
        #expect(decodeError(Array(good.dropLast(3))) != nil)
        var version = good
        version[4] = 9
        #expect(decodeError(version)?.contains("unknown block format version 9") == true)
        var oversized = good
        oversized[15] = 0x7F // claims far more than maxContentLength
        #expect(decodeError(oversized)?.contains("more than") == true)
        var lying = good
        lying[8] &+= 1 // says one byte more than the frame holds
        #expect(decodeError(lying) != nil)
    }
}
