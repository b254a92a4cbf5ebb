import Foundation
import Testing
import TestSupport

/// The first scenario: ccache keeps its cache on the mount, and a
/// second container run (new namespace, fresh upper dir, the first run's
/// snapshot underneath) at the same stable path gets hits for everything,
/// with no CCACHE_BASEDIR: the absolute paths are simply identical.
@Suite("Scenario: ccache across container runs") struct CcacheScenarioTests {
    static let modules = 30
    /// Every module and main.c (the link is not a compilation).
    static let compilations = modules + 1

    @Test func secondRunAtTheStablePathHitsTheCacheFromTheSnapshot() throws {
        let scenario = StablePathScenario("ccache")
        defer { scenario.finish() }
        let checkout = scenario.directory.sub("checkout")
        try CProject.write(to: checkout, modules: Self.modules)
        let project = scenario.stablePath + "/project"
        let ccache = CcacheBuild(cacheDirectory: scenario.stablePath + "/.ccache")

        // Run 1: empty mount, cold cache, commit the whole build directory.
        let run1 = try scenario.startRun("run1")
        let first = try ccache.cleanBuild(of: checkout, at: project, on: run1)
        #expect(first.misses == Self.compilations && first.hits == 0,
                "run 1 must compile everything through ccache: \(first)")
        let firstOutput = ccache.programOutput(project, on: run1)
        try #require(firstOutput.succeeded, "\(firstOutput.summary)")
        let commit = run1.commit(key: "ccache-run1")
        try #require(commit.succeeded, "\(commit.summary)\n\(scenario.daemonLog())")
        #expect(run1.end() == [])

        // Run 2: a new container with an empty upper dir over run 1's snapshot.
        let run2 = try scenario.startRun("run2", from: "ccache-run1")
        // Mounting copies nothing: the snapshot is read from the store on demand.
        #expect(run2.upperFileBytes() == 0, "bytes in the fresh upper dir right after the mount")
        // The snapshot is there before anything is written: the cache and run 1's program.
        let visible = run2.run(["test", "-d", scenario.stablePath + "/.ccache", "-a", "-x", project + "/build/program"])
        #expect(visible.succeeded, "run 1's cache and build are not visible on run 2's mount")
        // A fresh checkout and a full rebuild: only the cache carries over.
        let second = try ccache.cleanBuild(of: checkout, at: project, on: run2)
        #expect(second.compilations == Self.compilations, "run 2: \(second)")
        #expect(second.hitRate >= 0.99, "run 2 must hit the cache for everything: \(second)\n\(scenario.daemonLog())")
        let secondOutput = ccache.programOutput(project, on: run2)
        #expect(secondOutput.succeeded && secondOutput.stdout == firstOutput.stdout,
                "run 2's program: \(secondOutput.summary); run 1 printed \(firstOutput.stdout)")
        // The cache came out of the store, read through the mount.
        let (counters, stats) = run2.mountCounters { ($0["bytesServedFromStore"] ?? 0) > 0 }
        #expect((counters["bytesServedFromStore"] ?? 0) > 0, "nothing served from the store: \(stats.summary)")
        #expect(run2.end() == [])
    }

    /// The control: the same two builds without buildfs, from two different
    /// directories (what CI containers get without a stable path), with one
    /// cache directory kept between them. ccache hashes the working
    /// directory into every key when compiling with -g (the debug info names
    /// it), so the second build misses nearly everything; this is the
    /// problem the stable path solves, and it shows the first test's hits
    /// do not come for free.
    @Test func controlFromTwoPlainDirectoriesMissesTheCache() throws {
        let directory = TemporaryDirectory("buildfs-scenario-ccache-control")
        let checkout = directory.sub("checkout")
        try CProject.write(to: checkout, modules: Self.modules)
        let ccache = CcacheBuild(cacheDirectory: directory.sub("plain-ccache"))
        let host = HostRunner()
        for name in ["plainA", "plainB"] {
            try FileManager.default.createDirectory(atPath: directory.sub(name), withIntermediateDirectories: false)
        }

        let first = try ccache.cleanBuild(of: checkout, at: directory.sub("plainA/project"), on: host)
        #expect(first.misses == Self.compilations && first.hits == 0, "build in plainA: \(first)")
        let second = try ccache.cleanBuild(of: checkout, at: directory.sub("plainB/project"), on: host)
        #expect(second.compilations == Self.compilations, "build in plainB: \(second)")
        #expect(second.hitRate < 0.5, "a different directory should miss the cache: \(second)")
    }
}
