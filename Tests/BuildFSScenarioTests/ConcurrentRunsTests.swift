import Foundation
import Testing
import TestSupport

/// Two container runs on one host, at the same stable path at the same
/// time (separate mount namespaces sharing /run): each run's commit, stats
/// and umount must find its own mount, never the other's.
@Suite("Scenario: concurrent runs at one stable path") struct ConcurrentRunsTests {
    @Test func eachRunCommitsAndUnmountsItsOwnMount() throws {
        let scenario = StablePathScenario("concurrent")
        defer { scenario.finish() }
        let runA = try scenario.startRun("A")
        let runB = try scenario.startRun("B")
        #expect(runA.run(["sh", "-c", "echo A > '\(scenario.stablePath)/fileA'"]).succeeded)
        #expect(runB.run(["sh", "-c", "echo B > '\(scenario.stablePath)/fileB'"]).succeeded)

        let commitA = runA.commit(key: "from-A")
        #expect(commitA.succeeded, "\(commitA.summary)\n\(scenario.daemonLog())")
        let exported = scenario.directory.sub("exported-A")
        let export = scenario.export("from-A", to: exported)
        #expect(export.succeeded, "\(export.summary)")
        #expect(FileManager.default.fileExists(atPath: exported + "/fileA"))
        #expect(!FileManager.default.fileExists(atPath: exported + "/fileB"))

        // A's umount waits for A's daemon only, and leaves B working.
        let started = Date()
        #expect(runA.end().isEmpty)
        #expect(Date().timeIntervalSince(started) < 10, "umount of run A took \(Date().timeIntervalSince(started)) s")
        let commitB = runB.commit(key: "from-B")
        #expect(commitB.succeeded, "\(commitB.summary)\n\(scenario.daemonLog())")
        #expect(runB.end().isEmpty)
    }
}
