import Foundation
import Glibc
import Testing
import TestSupport

/// The command line as a user meets it: separate processes, exit codes, and
/// what lands on stdout and stderr.
@Suite struct CLITests {
    let dir = TemporaryDirectory()
    var store: String { dir.sub("store") }

    func buildfs(_ arguments: String...) throws -> CommandResult {
        try Shell.run([Shell.buildfs] + arguments)
    }

    @Test func helpDescribesEveryCommandWithAnExample() throws {
        let top = try buildfs("--help")
        #expect(top.status == 0)
        for command in ["mount", "umount", "commit", "stats", "import", "export", "snapshots", "gc", "fsck"] {
            #expect(top.stdout.split(whereSeparator: \.isWhitespace).contains(Substring(command)), "\(command) missing from --help")
            let help = try buildfs(command, "--help")
            #expect(help.status == 0 && help.stdout.contains("Example:"), "\(command) --help")
            // The discussion (between the overview and the usage) fits an
            // 80-column terminal as written: asked for wide output, the
            // parser breaks nothing, so none of its lines may pass 80.
            let wide = try Shell.run([Shell.buildfs, command, "--help"], environment: ["COLUMNS": "200"])
            let lines = wide.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let discussion = lines.drop { !$0.isEmpty }.prefix { !$0.hasPrefix("USAGE:") }
            let long = discussion.filter { $0.count > 80 }
            #expect(long.isEmpty, "\(command) --help has lines over 80 columns: \(long)")
        }
    }

    @Test func realBuildTreeRoundTripsAndStaysUpToDate() throws {
        let project = dir.sub("project")
        try CProject.write(to: project)
        let make = try Shell.run(["make", "-C", project, "-j2"])
        #expect(make.status == 0, "\(make.stderr)")
        #expect(FileManager.default.fileExists(atPath: project + "/build/program"))

        let imported = try buildfs("import", project, "--key", "ci-linux-1", "--store", store)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("imported") && imported.stdout.contains("'ci-linux-1'"))

        let restored = dir.sub("restored")
        let exported = try buildfs("export", restored, "--from", "ci-linux-", "--store", store)
        #expect(exported.status == 0, "\(exported.stderr)")
        let differences = TreeListing(of: restored).differences(from: TreeListing(of: project))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
        // mtimes came back exactly, so make has nothing to do and the program runs.
        #expect(try Shell.run(["make", "-C", restored, "-q"]).status == 0)
        let original = try Shell.run([project + "/build/program"]).stdout
        #expect(try Shell.run([restored + "/build/program"]).stdout == original)
    }

    @Test func twoConcurrentImportsBothSucceedAndExportExactly() throws {
        for seed in [31, 32] as [UInt64] {
            var generator = RandomTree(seed: seed)
            generator.totalBudget = 40 * 1024 * 1024
            generator.generate(at: dir.sub("tree-\(seed)"))
        }
        let processes = try [31, 32].map { seed -> Process in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Shell.buildfs)
            process.arguments = ["import", dir.sub("tree-\(seed)"), "--key", "tree-\(seed)", "--store", store]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }
        for process in processes {
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        for seed in [31, 32] {
            let target = dir.sub("out-\(seed)")
            #expect(try buildfs("export", target, "--from", "tree-\(seed)", "--store", store).status == 0)
            let differences = TreeListing(of: target).differences(from: TreeListing(of: dir.sub("tree-\(seed)")))
            #expect(differences.isEmpty, "seed \(seed): \(differences.prefix(5))")
        }
    }

    @Test func snapshotsListsForPeopleAndScripts() throws {
        mkdir(dir.sub("src"), 0o755)
        writeFile(dir.sub("src/file"), Array(repeating: 65, count: 5000))
        #expect(try buildfs("import", dir.sub("src"), "--key", "alpha", "--store", store).status == 0)
        #expect(try buildfs("import", dir.sub("src"), "--key", "beta/with slash", "--store", store).status == 0)
        let table = try buildfs("snapshots", "--store", store)
        #expect(table.stdout.hasPrefix("KEY"))
        // Newest first.
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 3 && lines[1].hasPrefix("beta/with slash") && lines[2].hasPrefix("alpha"))
        let json = try buildfs("snapshots", "--json", "--store", store)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(parsed?.compactMap { $0["key"] as? String } == ["beta/with slash", "alpha"])
        #expect(parsed?.first?["logicalBytes"] as? Int == 5000)
    }

    @Test func storeComesFromTheEnvironmentWhenNotGiven() throws {
        mkdir(dir.sub("src"), 0o755)
        let result = try Shell.run([Shell.buildfs, "import", dir.sub("src"), "--key", "env"],
                                   environment: ["BUILDFS_STORE": store])
        #expect(result.status == 0)
        #expect(FileManager.default.fileExists(atPath: store + "/buildfs-store"))
    }

    // MARK: errors a user can cause

    @Test func unknownKey() throws {
        mkdir(dir.sub("src"), 0o755)
        #expect(try buildfs("import", dir.sub("src"), "--key", "exists", "--store", store).status == 0)
        expectOneLineError(try buildfs("export", dir.sub("out"), "--from", "missing", "--from", "miss-", "--store", store),
                           containing: "no snapshot matches 'missing', 'miss-'")
    }

    @Test func exportTargetNotEmpty() throws {
        mkdir(dir.sub("src"), 0o755)
        writeFile(dir.sub("src/keep"), [1])
        #expect(try buildfs("import", dir.sub("src"), "--key", "k", "--store", store).status == 0)
        expectOneLineError(try buildfs("export", dir.sub("src"), "--from", "k", "--store", store),
                           containing: "not empty")
    }

    @Test func importOfMissingDirectory() throws {
        expectOneLineError(try buildfs("import", dir.sub("nope"), "--key", "k", "--store", store),
                           containing: "no such directory")
    }

    @Test func storeNotWritable() throws {
        let readOnly = dir.sub("ro-store")
        mkdir(readOnly, 0o755)
        #expect(try Shell.bash("mount --bind '\(readOnly)' '\(readOnly)' && mount -o remount,ro,bind '\(readOnly)'").status == 0)
        defer { umount2(readOnly, Int32(MNT_DETACH)) }
        mkdir(dir.sub("src"), 0o755)
        expectOneLineError(try buildfs("import", dir.sub("src"), "--key", "k", "--store", readOnly),
                           containing: "Read-only file system")
    }

    @Test func storeOfAnotherFormat() throws {
        mkdir(dir.sub("src"), 0o755)
        #expect(try buildfs("import", dir.sub("src"), "--key", "k", "--store", store).status == 0)
        writeFile(store + "/buildfs-store", Array("buildfs store format 99\n".utf8))
        expectOneLineError(try buildfs("snapshots", "--store", store), containing: "store format 99")
    }

    @Test func diskFullLeavesAConsistentStore() throws {
        let small = dir.sub("small")
        mkdir(small, 0o755)
        #expect(try Shell.bash("mount -t tmpfs -o size=2m tmpfs '\(small)'").status == 0)
        defer { umount2(small, Int32(MNT_DETACH)) }
        var random = SeededRandom(seed: 77)
        mkdir(dir.sub("big"), 0o755)
        writeFile(dir.sub("big/random.bin"), random.bytes(8 * 1024 * 1024))
        expectOneLineError(try buildfs("import", dir.sub("big"), "--key", "big", "--store", small + "/store"),
                           containing: "disk full")
        // Nothing half-written is referenced or left behind, and the store still works.
        let listing = try buildfs("snapshots", "--json", "--store", small + "/store")
        #expect(listing.status == 0 && listing.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]"
                || listing.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        #expect(try FileManager.default.contentsOfDirectory(atPath: small + "/store/tmp").isEmpty)
        let fsck = try buildfs("fsck", "--store", small + "/store")
        #expect(fsck.status == 0 && fsck.stdout.contains("no damage"), "\(fsck.stdout) \(fsck.stderr)")
        mkdir(dir.sub("little"), 0o755)
        writeFile(dir.sub("little/file"), Array("small enough".utf8))
        #expect(try buildfs("import", dir.sub("little"), "--key", "little", "--store", small + "/store").status == 0)
        #expect(try buildfs("export", dir.sub("little-out"), "--from", "little", "--store", small + "/store").status == 0)
        #expect(TreeListing(of: dir.sub("little-out")).differences(from: TreeListing(of: dir.sub("little"))).isEmpty)
    }

    @Test func badArgumentsExitNonZero() throws {
        let result = try buildfs("import", dir.path, "--key", "k", "--level", "40", "--store", store)
        #expect(result.status != 0 && result.stderr.contains("--level"))
        #expect(try buildfs("export", dir.sub("x"), "--store", store).status != 0)
    }
}
