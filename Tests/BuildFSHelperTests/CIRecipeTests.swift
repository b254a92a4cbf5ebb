import Foundation
import Testing
import TestSupport

/// mount-helpers/ci/: the generic ci-job.sh run as a CI job would run it, and
/// the GitHub Actions examples checked for the parts that make them work.
@Suite("CI recipes") struct CIRecipeTests {
    static let modules = 20
    static let compilations = modules + 1

    /// A build command for ci-job.sh: a fresh copy of the checkout at the
    /// stable path, a ccache build with -g, and the statistics of this build.
    static let build = #"""
        rm -rf src && cp -a "$CHECKOUT" src && ccache -z >/dev/null \
          && make -s -C src -j2 CC="ccache cc" CFLAGS="-O2 -g" && ccache --print-stats >"$STATS"
        """#

    @Test(arguments: ["mount", "copy"])
    func jobsOnAPersistentStoreHitTheCacheAndAFailedBuildSavesNothing(mode: String) throws {
        let directory = TemporaryDirectory("buildfs-helper-cijob")
        let checkout = directory.sub("checkout"), store = directory.sub("store"), work = directory.sub("work")
        try CProject.write(to: checkout, modules: Self.modules)
        let uppers = directory.sub("uppers")
        try makeDirectory(uppers)

        func job(_ name: String, _ command: [String]) -> (Outcome, CcacheStats) {
            let stats = directory.sub("\(name).stats")
            if mode == "copy" { _ = run(["rm", "-rf", work]) }  // copy mode is for fresh machines
            let environment = cleanEnvironment([
                "BUILDFS_BIN": Shell.buildfs, "BUILDFS_STORE": store, "BUILDFS_MOUNT": work, "BUILDFS_MODE": mode,
                "BUILDFS_KEY_PREFIX": "linux-test", "CCACHE_DIR": work + "/.ccache", "RUNNER_TEMP": uppers,
                "CHECKOUT": checkout, "STATS": stats,
            ])
            // The key comes from the job's working directory: the checkout.
            let outcome = run([Repo.helpers + "/ci/ci-job.sh", "--"] + command, environment: environment,
                              directory: checkout, timeout: 600)
            return (outcome, CcacheStats(readText(stats) ?? ""))
        }
        func leftovers() -> [String] {
            mountPoints(under: directory.path) + processes(mentioning: work)
                + ((try? FileManager.default.contentsOfDirectory(atPath: uppers)) ?? [])
        }

        let (first, firstStats) = job("job1", ["sh", "-c", Self.build])
        try #require(first.succeeded, "\(first)")
        #expect(firstStats.misses == Self.compilations && firstStats.hits == 0, "job 1: \(firstStats)")
        let keys = snapshotKeys(store: store)
        #expect(keys.count == 1 && keys.first?.hasPrefix("linux-test-") == true, "store after job 1: \(keys)")
        #expect(leftovers().isEmpty, "job 1 left \(leftovers())")

        let (second, secondStats) = job("job2", ["sh", "-c", Self.build])
        try #require(second.succeeded, "\(second)")
        #expect(secondStats.compilations == Self.compilations && secondStats.hitRate >= 0.99, "job 2: \(secondStats)")
        #expect(snapshotKeys(store: store) == keys)
        #expect(leftovers().isEmpty, "job 2 left \(leftovers())")

        // A failing build: its exit status, no new snapshot, nothing left mounted.
        let (failed, _) = job("job3", ["sh", "-c", "echo half > half-built; exit 3"])
        #expect(failed.status == 3, "the build's exit status must be the job's: \(failed)")
        #expect(failed.stderr.contains("not saving a snapshot"), "\(failed)")
        #expect(snapshotKeys(store: store) == keys)
        #expect(leftovers().isEmpty, "the failed job left \(leftovers())")
    }

    @Test func noBuildCommandIsAClearError() {
        let outcome = run([Repo.helpers + "/ci/ci-job.sh"], environment: cleanEnvironment(["BUILDFS_BIN": Shell.buildfs]))
        #expect(outcome.status != 0)
        #expect(outcome.stderr.hasPrefix("ci-job: error: no build command"), "\(outcome)")
    }

    /// The GitHub Actions examples: valid YAML, and each step that matters where it must be.
    @Test func githubWorkflowsHaveKeysRestoreKeysAndGcBeforeTheSave() throws {
        let script = """
            import json, sys, yaml
            print(json.dumps({f: yaml.safe_load(open(f)) for f in sys.argv[1:]}))
            """
        let hosted = Repo.helpers + "/ci/github-hosted.yml", selfHosted = Repo.helpers + "/ci/github-self-hosted.yml"
        let parsed = run(["/usr/bin/python3", "-c", script, hosted, selfHosted], timeout: 60)
        try #require(parsed.succeeded, "\(parsed)")
        let files = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: Any])
        func steps(_ file: String) -> [[String: Any]] {
            let jobs = (files[file] as? [String: Any])?["jobs"] as? [String: Any] ?? [:]
            return (jobs["build"] as? [String: Any])?["steps"] as? [[String: Any]] ?? []
        }
        func uses(_ step: [String: Any]) -> String { step["uses"] as? String ?? "" }
        func runs(_ step: [String: Any]) -> String { step["run"] as? String ?? "" }

        let hostedSteps = steps(hosted)
        let restore = hostedSteps.firstIndex { uses($0).hasPrefix("actions/cache/restore@") }
        let build = hostedSteps.firstIndex { runs($0).contains("mount-helpers/ci/ci-job.sh") }
        let gc = hostedSteps.firstIndex { runs($0).contains("buildfs gc") && runs($0).contains("--max-size") }
        let save = hostedSteps.firstIndex { uses($0).hasPrefix("actions/cache/save@") }
        #expect(restore != nil && build != nil && gc != nil && save != nil, "hosted steps: \(hostedSteps)")
        if let restore, let build, let gc, let save {
            #expect(restore < build && build < gc && gc < save, "order must be restore, build, gc, save")
            let with = hostedSteps[restore]["with"] as? [String: Any] ?? [:]
            #expect(with["key"] != nil && with["restore-keys"] != nil, "restore needs key and restore-keys")
            #expect((hostedSteps[save]["with"] as? [String: Any])?["path"] as? String == with["path"] as? String,
                    "save and restore must name the same path")
        }
        #expect(steps(selfHosted).contains { runs($0).contains("mount-helpers/ci/ci-job.sh") })
        #expect(FileManager.default.isExecutableFile(atPath: Repo.helpers + "/ci/ci-job.sh"))
    }
}
