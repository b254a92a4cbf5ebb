import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

/// kill -9 at random points of import and gc, and writers racing gc: the
/// store must stay consistent and every snapshot in it exact.
@Suite(.serialized) struct CrashAndConcurrencyTests {
    let dir = TemporaryDirectory()
    var store: String { dir.sub("store") }

    func buildfs(_ arguments: [String]) throws -> CommandResult {
        try Shell.run([Shell.buildfs] + arguments + ["--store", store])
    }

    func exportMatches(_ key: String, _ source: String) throws -> [String] {
        let target = dir.sub("check-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(atPath: target) }
        let result = try buildfs(["export", target, "--from", key])
        guard result.status == 0 else { return ["export \(key) failed: \(result.stderr)"] }
        return TreeListing(of: target).differences(from: TreeListing(of: source))
    }

    /// Starts `arguments` and kills it with SIGKILL after `delay` seconds.
    func killDuring(_ arguments: [String], after delay: Double) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Shell.buildfs)
        process.arguments = arguments + ["--store", store]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(useconds_t(delay * 1_000_000))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    @Test func killNineDuringImportAndGCLeavesEverySnapshotExact() throws {
        for seed in [41, 42] as [UInt64] {
            var tree = RandomTree(seed: seed)
            tree.totalBudget = 6 * 1024 * 1024
            tree.generate(at: dir.sub("base-\(seed)"))
            #expect(try buildfs(["import", dir.sub("base-\(seed)"), "--key", "base-\(seed)"]).status == 0)
        }
        var random = SeededRandom(seed: 4242)
        mkdir(dir.sub("churn"), 0o755)
        for kill in 0..<50 {
            // New content every round, under one key: replaced snapshots
            // leave garbage for gc to sweep and rewrite.
            writeFile(dir.sub("churn/data-\(kill % 3).bin"), random.bytes(Int.random(in: 100_000...3_000_000, using: &random)))
            let delay = Double.random(in: 0...0.25, using: &random)
            if kill % 3 == 2 {
                // The tightest limit: gc evicts, removes and rewrites all it can.
                try killDuring(["gc", "--max-size", "1"], after: delay)
            } else {
                try killDuring(["import", dir.sub("churn"), "--key", "churn"], after: delay)
            }
            let fsck = try buildfs(["fsck"])
            #expect(fsck.status == 0, "after kill \(kill): \(fsck.stdout) \(fsck.stderr)")
            if fsck.status != 0 { return }
            if kill % 10 == 9 {
                // gc --max-size 1 may evict the bases: re-import them when gone,
                // and check them when present.
                for seed in [41, 42] {
                    let listing = try buildfs(["snapshots", "--json"]).stdout
                    if listing.contains("\"base-\(seed)\"") {
                        let differences = try exportMatches("base-\(seed)", dir.sub("base-\(seed)"))
                        #expect(differences.isEmpty, "base-\(seed) after kill \(kill): \(differences.prefix(3))")
                    } else {
                        #expect(try buildfs(["import", dir.sub("base-\(seed)"), "--key", "base-\(seed)"]).status == 0)
                    }
                }
            }
        }
        // A gc that finishes leaves nothing behind but what snapshots need.
        #expect(try buildfs(["gc"]).status == 0)
        let fsck = try buildfs(["fsck"])
        #expect(fsck.status == 0 && !fsck.stdout.contains("unreferenced"), "\(fsck.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: store + "/tmp").isEmpty)
    }

    @Test func threeWritersAndAGCLoopKeepEverySnapshotExact() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["BUILDFS_STRESS_SECONDS"] ?? "") ?? 30
        for writer in 0..<3 {
            var tree = RandomTree(seed: UInt64(60 + writer))
            tree.totalBudget = 4 * 1024 * 1024
            tree.generate(at: dir.sub("writer-\(writer)"))
        }
        /// The file that makes each iteration of a writer different.
        @Sendable func iterationBytes(_ writer: Int, _ n: Int) -> [UInt8] {
            var random = SeededRandom(seed: UInt64(writer * 1_000_000 + n))
            return random.bytes(200_000 + n % 7 * 10_000)
        }
        let deadline = Date().addingTimeInterval(seconds)
        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        for writer in 0..<3 {
            DispatchQueue.global().async(group: group) {
                var n = 0
                while Date() < deadline {
                    writeFile(dir.sub("writer-\(writer)/iteration.bin"), iterationBytes(writer, n))
                    let result = try? buildfs(["import", dir.sub("writer-\(writer)"), "--key", "w\(writer)-\(n)"])
                    if result?.status != 0 { failures.withLock { $0.append("import w\(writer)-\(n): \(result?.stderr ?? "")") } }
                    n += 1
                }
            }
        }
        DispatchQueue.global().async(group: group) {
            while Date() < deadline {
                let result = try? buildfs(["gc", "--keep", "4", "--max-age", "0s"])
                if result?.status != 0 { failures.withLock { $0.append("gc: \(result?.stderr ?? "")") } }
                usleep(200_000)
            }
        }
        group.wait()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(3))")

        let listing = try buildfs(["snapshots", "--json"])
        let refs = try JSONSerialization.jsonObject(with: Data(listing.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(!refs.isEmpty)
        for key in refs.compactMap({ $0["key"] as? String }) {
            let parts = key.dropFirst().split(separator: "-")
            let writer = Int(parts[0])!, n = Int(parts[1])!
            writeFile(dir.sub("writer-\(writer)/iteration.bin"), iterationBytes(writer, n))
            let target = dir.sub("out-\(key)")
            #expect(try buildfs(["export", target, "--from", key]).status == 0)
            var expected = TreeListing(of: dir.sub("writer-\(writer)")), got = TreeListing(of: target)
            // iteration.bin's mtime differs from the one imported: compare its content only.
            #expect(FileManager.default.contents(atPath: target + "/iteration.bin") == Data(iterationBytes(writer, n)))
            expected.entries["iteration.bin"] = nil
            got.entries["iteration.bin"] = nil
            let root = expected.differences(from: got)
            #expect(root.isEmpty, "\(key): \(root.prefix(3))")
        }
        #expect(try buildfs(["fsck"]).status == 0)
    }
}
