import Foundation
import Glibc
import Testing
import TestSupport

/// The store on a real nginx with WebDAV (the setup Bazel documents for
/// its HTTP remote cache), driven through the buildfs command line.
/// Requests are counted in nginx's access log.
@Suite(.serialized) struct RemoteStoreTests {
    let dir = TemporaryDirectory("buildfs-remote")
    let server: NginxServer

    init() throws {
        server = try NginxServer()
        for name in ["mnt", "upper"] { mkdir(dir.sub(name), 0o755) }
    }

    /// Runs buildfs against the server, with a cache directory of its own
    /// per `cache` name (a fresh name is a machine that never fetched).
    func buildfs(_ arguments: [String], cache: String = "cache", url: String? = nil,
                 environment: [String: String]? = nil) throws -> CommandResult {
        try Shell.run([Shell.buildfs] + arguments + ["--store", url ?? server.url, "--cache-dir", dir.sub(cache)],
                      environment: environment)
    }

    func randomTree(_ seed: UInt64, at path: String, budget: Int = 8 << 20) {
        var tree = RandomTree(seed: seed)
        tree.totalBudget = budget
        tree.generate(at: path)
    }

    @Test func importAndExportRoundTripExactlyThroughTheServer() throws {
        let source = dir.sub("source")
        randomTree(41, at: source)
        try CProject.write(to: source + "/project")
        #expect(try Shell.run(["make", "-s", "-C", source + "/project", "-j2"]).status == 0)
        let imported = try buildfs(["import", source, "--key", "ci-linux-1"])
        #expect(imported.status == 0, "\(imported.stderr)")
        // Hundreds of objects travel as a few packs and one pack map.
        let files = Int(try Shell.bash("find '\(source)' -type f | wc -l").stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(files > 40)
        #expect((2...6).contains(server.count("PUT", "cas")), "\(server.count("PUT", "cas")) blobs sent")
        #expect(server.count("PUT", "ac") >= 2) // the ref and its prefix index entries

        // Another machine: an empty cache, so every object comes from the
        // server, in a few Range requests.
        let restored = dir.sub("restored")
        let exported = try buildfs(["export", restored, "--from", "ci-linux-"], cache: "other-machine")
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(server.count("GET", "cas") <= 10, "\(server.count("GET", "cas")) downloads for \(files) files")
        let differences = TreeListing(of: restored).differences(from: TreeListing(of: source))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
        #expect(try Shell.run(["make", "-C", restored + "/project", "-q"]).status == 0)

        // A second export on that machine is served from its cache.
        let gets = server.count("GET", "cas")
        let again = try buildfs(["export", dir.sub("again"), "--from", "ci-linux-1"], cache: "other-machine")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(server.count("GET", "cas") == gets)

        let listed = try buildfs(["snapshots"], cache: "other-machine")
        #expect(listed.status == 0 && listed.stdout.contains("ci-linux-1"), "\(listed.summary)")
    }

    @Test func aSecondImportAfterASmallChangeSendsOnlyTheChangedObjects() throws {
        let source = dir.sub("source")
        randomTree(42, at: source)
        #expect(try buildfs(["import", source, "--key", "run-1"]).status == 0)
        let firstPuts = server.count("PUT", "cas")
        #expect(firstPuts >= 2)

        // One small file changes, two directories below the root.
        let changed = try Shell.bash("find '\(source)' -mindepth 3 -type f -size -60k | sort | head -1").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!changed.isEmpty)
        #expect(try Shell.bash("echo changed >> '\(changed)'").status == 0)
        let requestsBefore = server.requests().count
        let second = try buildfs(["import", source, "--key", "run-2"])
        #expect(second.status == 0, "\(second.stderr)")
        // One pack (the changed file's chunk, the trees from it to the root,
        // the stat index) and the new pack map: nothing else is sent, and
        // the whole save is a handful of requests.
        let puts = server.count("PUT", "cas") - firstPuts
        #expect(puts == 2, "\(puts) blobs sent for a one-file change")
        let requests = server.requests().count - requestsBefore
        #expect(requests <= 12, "\(requests) requests for a one-file change: \(server.requests().suffix(requests))")

        // The same import from a machine whose cache knows nothing reads the
        // parent's pack map and sends no pack: the server has every object.
        let third = try buildfs(["import", source, "--key", "run-3"], cache: "fresh")
        #expect(third.status == 0, "\(third.stderr)")
        #expect(server.count("PUT", "cas") - firstPuts - puts <= 1, "only the pack map may be sent")
    }

    @Test func mountFromTheServerAndCommitRoundTrip() throws {
        let source = dir.sub("source")
        randomTree(43, at: source)
        try CProject.write(to: source + "/project")
        #expect(try buildfs(["import", source, "--key", "base"]).status == 0)
        let mnt = dir.sub("mnt")
        let mounted = try buildfs(["mount", mnt, "--upper", dir.sub("upper"), "--from", "ba"], cache: "runner")
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Shell.run([Shell.buildfs, "umount", mnt]) }
        let differences = TreeListing(of: mnt).differences(from: TreeListing(of: source))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
        // Each block came over the network at most once, though every
        // file was read (twice: listing, then again here).
        #expect(try Shell.bash("find '\(mnt)' -type f -exec cat {} + > /dev/null").status == 0)
        let reads = server.packReads()
        for (n, read) in reads.enumerated() {
            for other in reads[(n + 1)...] where other.file == read.file {
                #expect(read.range != nil && other.range != nil && !read.range!.overlaps(other.range!),
                        "bytes of \(read.file) fetched twice: \(String(describing: read.range)), \(String(describing: other.range))")
            }
        }

        // Build on it and commit through the server.
        let make = try Shell.run(["make", "-s", "-C", mnt + "/project", "-j2"])
        #expect(make.status == 0, "\(make.stderr)")
        #expect(try Shell.bash("echo new > '\(mnt)/new.txt' && rm -rf \"$(find '\(mnt)' -mindepth 1 -maxdepth 1 -type d | grep -v project | head -1)\"").status == 0)
        let committed = try buildfs(["commit", mnt, "--key", "built"], cache: "runner")
        #expect(committed.status == 0, "\(committed.stderr)")
        let exported = dir.sub("exported")
        let export = try buildfs(["export", exported, "--from", "built"], cache: "elsewhere")
        #expect(export.status == 0, "\(export.stderr)")
        let afterCommit = TreeListing(of: exported).differences(from: TreeListing(of: mnt))
        #expect(afterCommit.isEmpty, "\(afterCommit.prefix(5))")

        // A second commit after a one-line change sends one pack (that
        // file's chunk, the trees above it, the stat index, the read trace)
        // and the pack map, nothing more.
        let putsBefore = server.count("PUT", "cas")
        #expect(try Shell.bash("echo '// changed' >> '\(mnt)/project/src/main.c'").status == 0)
        let second = try buildfs(["commit", mnt, "--key", "built-2"], cache: "runner")
        #expect(second.status == 0, "\(second.stderr)")
        let puts = server.count("PUT", "cas") - putsBefore
        #expect(puts == 2, "\(puts) blobs sent for a one-line change")
    }

    @Test func aServerStoppedInTheMiddleOfAnImportLeavesNoRefAndARetrySucceeds() throws {
        // A server answering 4 requests a second, and several packs to
        // send: the import is surely still uploading when it dies.
        let server = try NginxServer(requestsPerSecond: 4)
        let source = dir.sub("source")
        randomTree(44, at: source, budget: 48 << 20)
        let log = OutputFile()
        let importing = try Child([Shell.buildfs, "import", source, "--key", "half", "--store", server.url,
                                   "--cache-dir", dir.sub("cache")], stderr: log.fd)
        #expect(waitUntil(seconds: 60) { server.count("PUT", "cas") >= 1 || !importing.isRunning })
        server.kill()
        let status = importing.wait()
        #expect(status == 1, "import exited \(status): \(log.contents())")
        #expect(log.contents().split(separator: "\n").count == 1, "\(log.contents())")
        #expect(log.contents().contains(server.url), "\(log.contents())")

        try server.start()
        let missing = try buildfs(["export", dir.sub("out"), "--from", "half"], url: server.url)
        expectOneLineError(missing, containing: "no snapshot matches")
        let retry = try buildfs(["import", source, "--key", "half"], url: server.url)
        #expect(retry.status == 0, "\(retry.stderr)")
        let export = try buildfs(["export", dir.sub("out"), "--from", "half"], cache: "fresh", url: server.url)
        #expect(export.status == 0, "\(export.stderr)")
        let differences = TreeListing(of: dir.sub("out")).differences(from: TreeListing(of: source))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
    }

    @Test func aServerStoppedInTheMiddleOfACommitLeavesNoRefAndTheMountCommitsLater() throws {
        let server = try NginxServer(requestsPerSecond: 4)
        let source = dir.sub("source")
        randomTree(52, at: source, budget: 2 << 20)
        #expect(try buildfs(["import", source, "--key", "base"], url: server.url).status == 0)
        let mnt = dir.sub("mnt")
        let mounted = try buildfs(["mount", mnt, "--upper", dir.sub("upper"), "--from", "base"], url: server.url)
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Shell.run([Shell.buildfs, "umount", mnt]) }
        // Three packs to send, then the pack map and the ref: the server
        // dies after the first pack.
        #expect(try Shell.bash("head -c 40000000 /dev/urandom > '\(mnt)/build-output.bin'").status == 0)

        let putsBefore = server.count("PUT", "cas")
        let log = OutputFile()
        let committing = try Child([Shell.buildfs, "commit", mnt, "--key", "after", "--store", server.url,
                                    "--cache-dir", dir.sub("cache")], stderr: log.fd)
        #expect(waitUntil(seconds: 60) { server.count("PUT", "cas") >= putsBefore + 1 || !committing.isRunning })
        server.kill()
        #expect(committing.wait() == 1, "\(log.contents())")
        #expect(log.contents().split(separator: "\n").count == 1, "\(log.contents())")

        try server.start()
        expectOneLineError(try buildfs(["export", dir.sub("none"), "--from", "after"], url: server.url),
                           containing: "no snapshot matches")
        let retry = try buildfs(["commit", mnt, "--key", "after"], url: server.url)
        #expect(retry.status == 0, "\(retry.stderr)")
        let exported = dir.sub("exported")
        #expect(try buildfs(["export", exported, "--from", "after"], cache: "fresh", url: server.url).status == 0)
        let differences = TreeListing(of: exported).differences(from: TreeListing(of: mnt))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
    }

    @Test func wrongBytesFromTheServerAreDetectedAndNeverServed() throws {
        let source = dir.sub("source")
        randomTree(45, at: source)
        #expect(try buildfs(["import", source, "--key", "good"]).status == 0)
        // The server's biggest blob is a pack of file contents: change one byte.
        let biggest = server.objectFiles().max { fileSize($0) < fileSize($1) }!
        #expect(try Shell.bash("printf 'X' | dd of='\(biggest)' bs=1 seek=100 conv=notrunc status=none").status == 0)
        let exported = try buildfs(["export", dir.sub("out"), "--from", "good"], cache: "fresh")
        expectOneLineError(exported, containing: "damaged bytes")

        // Through a mount: the damaged file reads as EIO, the others are fine.
        let mnt = dir.sub("mnt")
        let mounted = try buildfs(["mount", mnt, "--upper", dir.sub("upper"), "--from", "good"], cache: "fresh2")
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Shell.run([Shell.buildfs, "umount", mnt]) }
        let read = try Shell.bash("cd '\(mnt)' && find . -type f -print0 | xargs -0 cat > /dev/null")
        #expect(read.status != 0 && read.stderr.contains("Input/output error"), "\(read.summary)")
        let healthy = try Shell.bash("cd '\(source)' && find . -type f -size -1k | head -1").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try Shell.run(["cmp", source + "/" + healthy, mnt + "/" + healthy]).status == 0)
    }

    @Test func aServerThatIsDownGivesOneClearLine() throws {
        let source = dir.sub("source")
        randomTree(46, at: source, budget: 1 << 20)
        #expect(try buildfs(["import", source, "--key", "k"]).status == 0)
        server.kill()
        let exported = try buildfs(["export", dir.sub("out"), "--from", "k"], cache: "fresh")
        expectOneLineError(exported, containing: "Connection refused")
        #expect(exported.stderr.contains("check that the server is up"))
        let mounted = try buildfs(["mount", dir.sub("mnt"), "--upper", dir.sub("upper"), "--from", "k"], cache: "fresh")
        expectOneLineError(mounted, containing: "Connection refused")
    }

    @Test func readOnlyJobsAndGCAreRefusedWithAReason() throws {
        let source = dir.sub("source")
        randomTree(47, at: source, budget: 1 << 20)
        #expect(try buildfs(["import", source, "--key", "main-1"]).status == 0)
        let puts = server.count("PUT", "cas") + server.count("PUT", "ac")
        let readOnly = try buildfs(["import", source, "--key", "fork-1", "--read-only"])
        expectOneLineError(readOnly, containing: "--read-only")
        #expect(server.count("PUT", "cas") + server.count("PUT", "ac") == puts)
        let export = try buildfs(["export", dir.sub("out"), "--from", "main-", "--read-only"], cache: "fresh")
        #expect(export.status == 0, "\(export.stderr)")
        expectOneLineError(try buildfs(["gc", "--max-size", "1G"]), containing: "evicts on its own")
        expectOneLineError(try buildfs(["fsck"]), containing: "local stores only")
    }

    @Test func twoRunnersCommittingAtOnceAreBothFoundByPrefix() throws {
        let sources = [dir.sub("a"), dir.sub("b")]
        randomTree(48, at: sources[0], budget: 2 << 20)
        randomTree(49, at: sources[1], budget: 2 << 20)
        let children = try sources.enumerated().map { n, source in
            try Child([Shell.buildfs, "import", source, "--key", "pr-7-run-\(n)", "--store", server.url,
                       "--cache-dir", dir.sub("cache-\(n)")])
        }
        for child in children { #expect(child.wait() == 0) }
        let listed = try buildfs(["snapshots", "--json"])
        #expect(listed.status == 0)
        for n in 0..<2 { #expect(listed.stdout.contains("pr-7-run-\(n)"), "\(listed.stdout)") }
        // The newer of the two is what a prefix restore gets.
        let found = try buildfs(["export", dir.sub("out"), "--from", "pr-7-"], cache: "fresh")
        #expect(found.status == 0, "\(found.stderr)")
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}
