import Foundation
import Glibc

/// Builds a random directory tree for property tests: names with unicode
/// and spaces, files from 0 bytes to several MiB (random, compressible and
/// duplicated content), empty directories, symlinks (some dangling), hard
/// links across directories, odd modes, owners, and mtimes with nanoseconds
/// (some before 1970).
public struct RandomTree {
    public var maxDepth = 3
    public var maxFileSize = 3 * 1024 * 1024
    public var totalBudget = 24 * 1024 * 1024

    private var random: SeededRandom
    private var spent = 0
    private var files: [String] = []
    private var contents: [[UInt8]] = []

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    static let nameParts = ["a", "B", "build", "obj", " ", "é", "日本", "ü", "🦀", "-", "_", ".x", "lib", "9", "Ω", "name with spaces"]
    static let fileModes: [mode_t] = [0o644, 0o755, 0o600, 0o444, 0o4755, 0o2750, 0o640, 0o000]
    static let dirModes: [mode_t] = [0o755, 0o700, 0o1777, 0o2775, 0o555]
    static let owners: [uid_t] = [0, 1000, 65534]

    public mutating func generate(at root: String) {
        precondition(mkdir(root, 0o755) == 0 || errno == EEXIST)
        fill(root, depth: 0)
        // Hard links across the tree, made after all files exist.
        for _ in 0..<min(3, files.count) {
            let source = files[Int.random(in: 0..<files.count, using: &random)]
            let dir = (source as NSString).deletingLastPathComponent
            let target = dir + "/hardlink-" + name()
            if link(source, target) == 0 { files.append(target) }
        }
        finishMetadata(root)
    }

    private mutating func name() -> String {
        var n = ""
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            n += RandomTree.nameParts[Int.random(in: 0..<RandomTree.nameParts.count, using: &random)]
        }
        return n == "." || n == ".." ? "dot" : n
    }

    private mutating func uniqueName(in dir: String) -> String {
        while true {
            let n = name()
            if access(dir + "/" + n, F_OK) != 0 && errno == ENOENT { return n }
        }
    }

    private mutating func fill(_ dir: String, depth: Int) {
        let fileCount = Int.random(in: 0...8, using: &random)
        for _ in 0..<fileCount {
            let path = dir + "/" + uniqueName(in: dir)
            writeFile(path, content())
            files.append(path)
        }
        for _ in 0..<Int.random(in: 0...2, using: &random) {
            let path = dir + "/" + uniqueName(in: dir)
            let targets = ["../somewhere", "/etc/hostname", "dangling target", "日本/file", files.last ?? "x"]
            symlink(targets[Int.random(in: 0..<targets.count, using: &random)], path)
        }
        guard depth < maxDepth else { return }
        for _ in 0..<Int.random(in: 0...3, using: &random) {
            let path = dir + "/" + uniqueName(in: dir)
            mkdir(path, 0o755)
            fill(path, depth: depth + 1) // some come out empty
        }
    }

    private mutating func content() -> [UInt8] {
        let roll = Int.random(in: 0..<100, using: &random)
        let size: Int
        switch roll {
        case 0..<8: size = 0
        case 8..<55: size = Int.random(in: 1...8192, using: &random)
        case 55..<85: size = Int.random(in: 8192...300_000, using: &random)
        default: size = Int.random(in: 300_000...maxFileSize, using: &random)
        }
        let budgeted = min(size, max(0, totalBudget - spent))
        spent += budgeted
        let bytes: [UInt8]
        if !contents.isEmpty && Int.random(in: 0..<6, using: &random) == 0 {
            bytes = contents[Int.random(in: 0..<contents.count, using: &random)] // a duplicate
        } else if Int.random(in: 0..<2, using: &random) == 0 {
            bytes = random.bytes(budgeted)
        } else {
            let line = Array("int function_\(random.next() % 1000)(void) { return 42; } // compressible\n".utf8)
            bytes = Array((0..<(budgeted / line.count + 1)).flatMap { _ in line }.prefix(budgeted))
        }
        contents.append(bytes)
        return bytes
    }

    /// Owners, modes and mtimes, deepest first (a change inside a directory
    /// moves its mtime).
    private mutating func finishMetadata(_ dir: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for n in names.sorted() {
            let path = dir + "/" + n
            var st = stat()
            lstat(path, &st)
            if st.isDirectory { finishMetadata(path) }
            let owner = RandomTree.owners[Int.random(in: 0..<RandomTree.owners.count, using: &random)]
            lchown(path, owner, owner)
            if st.isDirectory {
                chmod(path, RandomTree.dirModes[Int.random(in: 0..<RandomTree.dirModes.count, using: &random)])
            } else if st.isRegularFile {
                chmod(path, RandomTree.fileModes[Int.random(in: 0..<RandomTree.fileModes.count, using: &random)])
            }
            let seconds = Int.random(in: -100_000_000...2_000_000_000, using: &random)
            setMtime(path, seconds: seconds, nanoseconds: Int.random(in: 0...999_999_999, using: &random))
        }
    }
}

extension stat {
    var isRegularFile: Bool { (st_mode & S_IFMT) == S_IFREG }
    var isDirectory: Bool { (st_mode & S_IFMT) == S_IFDIR }
    var isSymlink: Bool { (st_mode & S_IFMT) == S_IFLNK }
}
