import Foundation
import Glibc
import Testing
import TestSupport

/// Objects travel in packs (issue 14): a restore and a lazy read fetch
/// blocks in a few Range requests, through a proxy that adds a real round
/// trip; a mount prefetches in the order the last job read; a snapshot in
/// the old format is refused with one line.
@Suite(.serialized) struct RemotePackTests {
    let dir = TemporaryDirectory("buildfs-packs")
    let server: NginxServer

    init() throws {
        server = try NginxServer()
        for name in ["mnt", "upper", "upper-1", "upper-2"] { mkdir(dir.sub(name), 0o755) }
    }

    func buildfs(_ arguments: [String], cache: String, url: String? = nil,
                 environment: [String: String]? = nil) throws -> CommandResult {
        try Shell.run([Shell.buildfs] + arguments + ["--store", url ?? server.url, "--cache-dir", dir.sub(cache)],
                      environment: environment)
    }

    func randomTree(_ seed: UInt64, budget: Int, at path: String) {
        var tree = RandomTree(seed: seed)
        tree.totalBudget = budget
        tree.generate(at: path)
    }

    func fileCount(_ path: String) throws -> Int {
        Int(try Shell.bash("find '\(path)' -type f | wc -l").stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    @Test func restoreAndLazyReadsThroughARealRoundTripMakeFewRequests() throws {
        let source = dir.sub("source")
        randomTree(61, budget: 6 << 20, at: source)
        try CProject.write(to: source + "/project")
        #expect(try Shell.bash("mkdir '\(source)/small' && for i in $(seq 300); do echo $i > '\(source)/small/'$i; done").status == 0)
        let files = try fileCount(source)
        #expect(files > 300)
        #expect(try buildfs(["import", source, "--key", "rtt-1"], cache: "saver").status == 0)

        let proxy = try LatencyProxy(target: server.port, delayMilliseconds: 5)
        // Restore on an empty cache: the ref, the map, then a few ranges.
        var before = server.count("GET", "cas")
        let restored = dir.sub("restored")
        let export = try buildfs(["export", restored, "--from", "rtt-1"], cache: "restorer", url: proxy.url(of: server))
        #expect(export.status == 0, "\(export.stderr)")
        #expect(TreeListing(of: restored).differences(from: TreeListing(of: source)).isEmpty)
        let restoreGets = server.count("GET", "cas") - before
        #expect(restoreGets <= 6, "a restore of \(files) files took \(restoreGets) downloads")

        // A lazy mount on an empty cache, every file read: per file at most
        // its blocks, never a request per chunk.
        before = server.count("GET", "cas")
        let mnt = dir.sub("mnt")
        let mounted = try buildfs(["mount", mnt, "--upper", dir.sub("upper"), "--from", "rtt-"], cache: "lazy",
                                  url: proxy.url(of: server))
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Shell.run([Shell.buildfs, "umount", mnt]) }
        #expect(try Shell.bash("cd '\(mnt)' && find . -type f -print0 | xargs -0 cat > /dev/null").status == 0)
        #expect(TreeListing(of: mnt).differences(from: TreeListing(of: source)).isEmpty)
        let lazyGets = server.count("GET", "cas") - before
        #expect(lazyGets <= 20, "reading \(files) files through a lazy mount took \(lazyGets) downloads")
    }

    @Test func aServerWithoutRangeSupportSendsWholePacksAndAllIsKept() throws {
        let server = try NginxServer(servesRanges: false)
        let source = dir.sub("source")
        randomTree(63, budget: 4 << 20, at: source)
        #expect(try buildfs(["import", source, "--key", "whole"], cache: "saver", url: server.url).status == 0)
        let packs = server.objectFiles().count - 1 // and the pack map
        let restored = dir.sub("restored")
        let export = try buildfs(["export", restored, "--from", "whole"], cache: "restorer", url: server.url)
        #expect(export.status == 0, "\(export.stderr)")
        #expect(TreeListing(of: restored).differences(from: TreeListing(of: source)).isEmpty)
        // The map, then each pack once: its first Range request got it all.
        let reads = server.packReads()
        #expect(reads.count <= packs + 1, "\(reads.count) downloads of \(packs) packs")

        let mnt = dir.sub("mnt")
        let mounted = try buildfs(["mount", mnt, "--upper", dir.sub("upper"), "--from", "whole"], cache: "lazy", url: server.url)
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Shell.run([Shell.buildfs, "umount", mnt]) }
        #expect(TreeListing(of: mnt).differences(from: TreeListing(of: source)).isEmpty)
    }

    @Test func aDamagedCacheCostsAFetchNotAFailure() throws {
        let source = dir.sub("source")
        randomTree(64, budget: 4 << 20, at: source)
        #expect(try buildfs(["import", source, "--key", "k"], cache: "saver").status == 0)
        #expect(try buildfs(["export", dir.sub("first"), "--from", "k"], cache: "runner").status == 0)
        // One byte of every pack the runner's cache keeps goes bad.
        let damaged = try Shell.bash("""
            for p in '\(dir.sub("runner"))'/packs/*.pack; do
              printf 'X' | dd of="$p" bs=1 seek=200 conv=notrunc status=none && echo "$p"
            done
            """)
        #expect(damaged.status == 0 && !damaged.stdout.isEmpty, "\(damaged.summary)")
        let gets = server.count("GET", "cas")
        let again = try buildfs(["export", dir.sub("again"), "--from", "k"], cache: "runner")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(TreeListing(of: dir.sub("again")).differences(from: TreeListing(of: source)).isEmpty)
        #expect(server.count("GET", "cas") > gets, "the damaged blocks were fetched again")
    }

    @Test func aSaveKilledBetweenItsPacksAndItsRefLeavesNoSnapshotAndTheNextSaveWorks() throws {
        // 4 requests a second and several packs: killed after the first.
        let server = try NginxServer(requestsPerSecond: 4)
        let source = dir.sub("source")
        randomTree(65, budget: 48 << 20, at: source)
        let saving = try Child([Shell.buildfs, "import", source, "--key", "killed", "--store", server.url,
                                "--cache-dir", dir.sub("cache")])
        #expect(waitUntil(seconds: 60) { server.count("PUT", "cas") >= 1 || !saving.isRunning })
        kill(saving.pid, SIGKILL)
        #expect(saving.wait() != 0, "the save finished before it was killed")
        // No ref before the packs are all sent (index lines may be: lookups
        // skip a line whose ref is missing).
        expectOneLineError(try buildfs(["export", dir.sub("none"), "--from", "killed"], cache: "other", url: server.url),
                           containing: "no snapshot matches")
        let listed = try buildfs(["snapshots", "--json"], cache: "other", url: server.url)
        #expect(listed.status == 0 && !listed.stdout.contains("\"killed\""), "\(listed.summary)")

        // Again, with the cache the killed save left behind.
        let again = try buildfs(["import", source, "--key", "killed"], cache: "cache", url: server.url)
        #expect(again.status == 0, "\(again.stderr)")
        let out = dir.sub("out")
        #expect(try buildfs(["export", out, "--from", "killed"], cache: "fresh", url: server.url).status == 0)
        #expect(TreeListing(of: out).differences(from: TreeListing(of: source)).isEmpty)
    }

    /// The map and index entries go out beside the last packs' uploads; the
    /// ref waits for those uploads, so a pack the server refuses leaves no
    /// snapshot, only index lines that lookups skip.
    @Test func aPackTheServerRefusesLeavesNoSnapshot() throws {
        let server = try NginxServer(maxUploadBytes: 512 << 10)
        let source = dir.sub("source")
        mkdir(source, 0o755)
        #expect(try Shell.bash("head -c \(3 << 20) /dev/urandom > '\(source)/noise' && echo hi > '\(source)/small'").status == 0)
        let save = try buildfs(["import", source, "--key", "refused-1"], cache: "saver", url: server.url)
        expectOneLineError(save, containing: "413")
        #expect(server.count("PUT", "ac") > 0, "the index entries went out beside the upload")
        expectOneLineError(try buildfs(["export", dir.sub("none"), "--from", "refused-1"], cache: "other", url: server.url),
                           containing: "no snapshot matches")
        expectOneLineError(try buildfs(["export", dir.sub("none"), "--from", "refused-"], cache: "other", url: server.url),
                           containing: "no snapshot matches")
        let listed = try buildfs(["snapshots", "--json"], cache: "other", url: server.url)
        #expect(listed.status == 0 && !listed.stdout.contains("refused-1"), "\(listed.summary)")
    }

    /// A save reads the ref its cache last saved from the same directory
    /// beside the index entry; the parent is still the newest snapshot of
    /// that directory, whatever the hint says.
    @Test func aSaveFindsItsParentWhateverItsCacheRemembers() throws {
        let source = dir.sub("source"), other = dir.sub("other")
        randomTree(66, budget: 1 << 20, at: source)
        randomTree(67, budget: 1 << 20, at: other)
        #expect(try buildfs(["import", source, "--key", "line-1"], cache: "runner").status == 0)
        #expect(try buildfs(["import", other, "--key", "line-2"], cache: "elsewhere").status == 0)
        func saveAfterAChange(_ key: String) throws -> String {
            #expect(try Shell.bash("echo \(key) >> '\(source)/changed'").status == 0)
            let saved = try buildfs(["import", source, "--key", key], cache: "runner")
            #expect(saved.status == 0, "\(saved.stderr)")
            return saved.stdout + saved.stderr
        }
        #expect(try saveAfterAChange("line-3").contains("unchanged since 'line-1'"))
        let hints = dir.sub("runner/last-saves")
        let remembered = try FileManager.default.contentsOfDirectory(atPath: hints)
        #expect(remembered.count == 1)
        #expect(try String(contentsOfFile: hints + "/" + remembered[0], encoding: .utf8) == "line-3")
        // A hint naming another directory's snapshot, or no key at all.
        try "line-2".write(toFile: hints + "/" + remembered[0], atomically: true, encoding: .utf8)
        #expect(try saveAfterAChange("line-4").contains("unchanged since 'line-3'"))
        try "../not a key\n".write(toFile: hints + "/" + remembered[0], atomically: true, encoding: .utf8)
        #expect(try saveAfterAChange("line-5").contains("unchanged since 'line-4'"))
    }

    @Test func aMountPrefetchesWhatTheLastJobReadFirst() throws {
        // One file per import, so that each file's chunks have a pack of
        // their own (an import of many files interleaves them in blocks).
        let source = dir.sub("source")
        mkdir(source, 0o755)
        for n in 0..<8 {
            #expect(try Shell.bash("head -c \(2 << 20) /dev/urandom > '\(source)/f\(n)'").status == 0)
            #expect(try buildfs(["import", source, "--key", n == 7 ? "line-1" : "grow-\(n)"], cache: "first").status == 0)
        }

        // Job 1 reads f6, then f2, and commits: its read trace goes with
        // the new snapshot.
        let mnt = dir.sub("mnt")
        #expect(try buildfs(["mount", mnt, "--upper", dir.sub("upper-1"), "--from", "line-1"], cache: "job-1").status == 0)
        #expect(try Shell.bash("cat '\(mnt)/f6' > /dev/null && cat '\(mnt)/f2' > /dev/null").status == 0)
        let committed = try buildfs(["commit", mnt, "--key", "line-2"], cache: "job-1")
        #expect(committed.status == 0, "\(committed.stderr)")
        #expect(try Shell.run([Shell.buildfs, "umount", mnt]).status == 0)

        // Job 2 mounts it on an empty cache, one request at a time, and
        // reads nothing: the prefetch alone decides the order.
        let firstRead = server.packReads().count
        let mounted = try buildfs(["mount", mnt, "--upper", dir.sub("upper-2"), "--from", "line-2"], cache: "job-2",
                                  environment: ProcessInfo.processInfo.environment.merging(["BUILDFS_REMOTE_PARALLEL": "1"]) { $1 })
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Shell.run([Shell.buildfs, "umount", mnt]) }
        // Samples of every file, found verbatim in the packs (random
        // blocks are stored uncompressed); wait until all were fetched.
        let samples = try (0..<8).map { try self.samples(of: source + "/f\($0)") }
        #expect(samples.allSatisfy { !$0.isEmpty })
        var fetchedBy: [[Int]] = []
        #expect(waitUntil(seconds: 30) {
            let reads = Array(server.packReads().dropFirst(firstRead))
            fetchedBy = samples.map { $0.map { sample in reads.firstIndex { sample.isCovered(by: $0) } ?? -1 } }
            return fetchedBy.allSatisfy { !$0.contains(-1) }
        })
        // All of f6 came no later than the last of f2, and no request that
        // carried only files job 1 did not read came in between. Before
        // them, only what the mount itself needed at once may come (the
        // root tree and the trace, whose blocks may hold file data too).
        let last = fetchedBy.map { $0.max() ?? Int.max }
        #expect(last[6] <= last[2], "f6 was read first by job 1: \(fetchedBy)")
        let traced = Set(fetchedBy[6] + fetchedBy[2])
        let untracedOnly = Set([0, 1, 3, 4, 5, 7].flatMap { fetchedBy[$0] }).subtracting(traced)
        let firstTraced = traced.min() ?? 0
        #expect(untracedOnly.filter { $0 > firstTraced && $0 < last[2] }.isEmpty,
                "the traced files come before the rest: \(fetchedBy)")
        #expect(untracedOnly.filter { $0 < firstTraced }.count <= 2, "the traced files come first: \(fetchedBy)")
    }

    /// 32 bytes every 64 KiB of a file, each with where it lies in a pack.
    private func samples(of path: String) throws -> [PackSample] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let packs = server.objectFiles().compactMap { file in FileManager.default.contents(atPath: file).map { (file, $0) } }
        return stride(from: 0, to: bytes.count - 32, by: 64 << 10).compactMap { offset in
            let needle = Data(bytes[offset..<offset + 32])
            for (file, data) in packs {
                if let found = data.range(of: needle) { return PackSample(file: file, offset: found.lowerBound) }
            }
            return nil // across two blocks: not stored verbatim
        }
    }

    @Test func aSnapshotInTheOldFormatIsRefusedAndSavingAgainReplacesIt() throws {
        let source = dir.sub("source")
        randomTree(62, budget: 1 << 20, at: source)
        #expect(try buildfs(["import", source, "--key", "old"], cache: "a").status == 0)
        // What buildfs 0.1 wrote: a ref without a pack map.
        let refs = try Shell.bash("grep -l '\"root\"' '\(server.dataDirectory)'/ac/* | xargs grep -L '\"refs\"'").stdout
            .split(separator: "\n").map(String.init)
        #expect(refs.count == 1, "\(refs)")
        #expect(try Shell.bash("sed -i '/\"packMap\"/d' '\(refs[0])'").status == 0)

        expectOneLineError(try buildfs(["export", dir.sub("out"), "--from", "old"], cache: "b"), containing: "older buildfs")
        let mnt = dir.sub("mnt")
        expectOneLineError(try buildfs(["mount", mnt, "--upper", dir.sub("upper"), "--from", "old"], cache: "b"),
                           containing: "older buildfs")
        // Saving it again (from another machine) stores it whole and replaces it.
        let again = try buildfs(["import", source, "--key", "old", "--parent", "old"], cache: "c")
        #expect(again.status == 0, "\(again.stderr)")
        let out = dir.sub("out2")
        #expect(try buildfs(["export", out, "--from", "old"], cache: "d").status == 0)
        #expect(TreeListing(of: out).differences(from: TreeListing(of: source)).isEmpty)
    }

    struct PackSample {
        var file: String
        var offset: Int

        func isCovered(by read: (file: String, range: ClosedRange<Int>?)) -> Bool {
            read.file == file && (read.range?.contains(offset) ?? true)
        }
    }
}
