import Foundation

/// The self-contained release binary (no dynamic dependencies), as
/// `scripts/build-release` makes it: the file that goes into containers and
/// empty roots. Built (or found up to date) once per test process; CI runs the
/// script before the tests, so here it is a no-op build of a few seconds.
/// `BUILDFS_RELEASE_BINARY=/path` uses that file instead of running the script.
public enum ReleaseBinary {
    /// The repository's root, from this source file's path.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        // .../Tests/TestSupport/ReleaseBinary.swift -> repository root
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The binary's absolute path: the last line `scripts/build-release` prints.
    public static func path() throws -> String {
        try built.get()
    }

    private static let built: Result<String, SpawnFailure> = {
        if let given = ProcessInfo.processInfo.environment["BUILDFS_RELEASE_BINARY"], !given.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: given) else {
                return .failure(SpawnFailure(description: "BUILDFS_RELEASE_BINARY=\(given) is not an executable file"))
            }
            return .success(given)
        }
        let result = runCommand([repositoryRoot + "/scripts/build-release"], timeout: 3600, directory: repositoryRoot)
        let lastLine = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard result.succeeded, lastLine.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: lastLine) else {
            return .failure(SpawnFailure(description: "scripts/build-release failed: \(result.summary)"))
        }
        return .success(lastLine)
    }()
}

/// What an ELF executable asks of the dynamic loader, read from its program
/// headers: the interpreter (PT_INTERP) and the libraries its dynamic section
/// names (DT_NEEDED). Both empty for a fully static binary.
public struct ELFDynamicInfo: Equatable, Sendable {
    public var interpreter: String?
    public var needed: [String]
    public var isStatic: Bool { interpreter == nil && needed.isEmpty }

    /// Reads a 64-bit little-endian ELF file (x86-64, aarch64).
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SpawnFailure(description: "\(path): cannot read")
        }
        let bytes = [UInt8](data)
        func fail(_ why: String) -> SpawnFailure { SpawnFailure(description: "\(path): \(why)") }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> Int { u32(at) | u32(at + 4) << 32 }
        func string(_ at: Int) -> String {
            var end = at
            while end < bytes.count, bytes[end] != 0 { end += 1 }
            return String(decoding: bytes[at..<end], as: UTF8.self)
        }
        guard bytes.count >= 64, bytes[0..<4] == [0x7f, 0x45, 0x4c, 0x46] else { throw fail("not an ELF file") }
        guard bytes[4] == 2, bytes[5] == 1 else { throw fail("not a 64-bit little-endian ELF file") }
        let phoff = u64(32), phentsize = u16(54), phnum = u16(56)
        guard phoff + phentsize * phnum <= bytes.count else { throw fail("program headers past the end") }
        var interpreter: String?
        var dynamic: (offset: Int, size: Int)?
        var loads: [(vaddr: Int, offset: Int, size: Int)] = []
        for index in 0..<phnum {
            let header = phoff + index * phentsize
            let type = u32(header), offset = u64(header + 8), vaddr = u64(header + 16), fileSize = u64(header + 32)
            switch type {
            case 1: loads.append((vaddr, offset, fileSize))                                  // PT_LOAD
            case 2: dynamic = (offset, fileSize)                                               // PT_DYNAMIC
            case 3: interpreter = offset < bytes.count ? string(offset) : "?"                 // PT_INTERP
            default: break
            }
        }
        var needed: [String] = []
        if let dynamic, dynamic.offset + dynamic.size <= bytes.count {
            var strtab: Int?
            var neededOffsets: [Int] = []
            var entry = dynamic.offset
            while entry + 16 <= dynamic.offset + dynamic.size {
                let tag = u64(entry), value = u64(entry + 8)
                if tag == 0 { break }                     // DT_NULL
                if tag == 1 { neededOffsets.append(value) }  // DT_NEEDED
                if tag == 5 { strtab = value }              // DT_STRTAB (an address)
                entry += 16
            }
            for offset in neededOffsets {
                // DT_STRTAB is a virtual address: map it to a file offset.
                if let strtab, let load = loads.first(where: { strtab >= $0.vaddr && strtab < $0.vaddr + $0.size }) {
                    needed.append(string(strtab - load.vaddr + load.offset + offset))
                } else {
                    needed.append("?")
                }
            }
        }
        self.interpreter = interpreter
        self.needed = needed
    }
}
