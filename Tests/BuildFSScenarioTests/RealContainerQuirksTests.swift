import Foundation
import Glibc
import Testing
import TestSupport

/// What real containers have that a test host does not: a mount table far
/// longer than one page (cibuildwheel's `-v /:/host` alone makes it ~6 KB),
/// and a PID 1 that never reaps orphans (`docker run IMAGE CMD` without
/// `--init`), which is who a daemon belongs to once `buildfs mount` returns.
@Suite("Scenario: what real containers do differently") struct RealContainerQuirksTests {
    /// commit and umount find the mount although its line in the mount
    /// table lies well past the first 4 KiB (a procfs file read in one go
    /// stops there).
    @Test func commitAndUmountFindTheMountPastTheFirstPageOfABigMountTable() throws {
        let scenario = StablePathScenario("mount-table")
        defer { scenario.finish() }
        let host = scenario.directory.sub("host"), extra = scenario.directory.sub("extra")
        mkdir(host, 0o755)
        mkdir(extra, 0o755)
        for i in 0..<120 { mkdir(extra + "/volume-\(i)", 0o755) }
        let run = try scenario.startRun("A", setup: [
            ["mount", "--rbind", "/", host],  // what `-v /:/host` does
            ["sh", "-c", "for d in '\(extra)'/volume-*; do mount -t tmpfs -o size=1m volume \"$d\"; done"],
        ])
        let table = try #require(readProcFile("/proc/\(run.container.pid)/mounts"))
        let line = try #require(table.range(of: " \(scenario.stablePath) fuse.buildfs "), "no buildfs line in the run's table")
        let offset = table.utf8.distance(from: table.startIndex, to: line.lowerBound)
        try #require(offset > 8192, "the mount's line is at byte \(offset) of \(table.utf8.count): the table is too small to test anything")

        #expect(run.run(["sh", "-c", "echo built > '\(scenario.stablePath)/output'"]).succeeded)
        let commit = run.commit(key: "big-table")
        #expect(commit.succeeded, "\(commit.summary)\n\(scenario.daemonLog())")
        let exported = scenario.directory.sub("exported")
        let export = scenario.export("big-table", to: exported)
        #expect(export.succeeded, "\(export.summary)")
        #expect((try? String(contentsOfFile: exported + "/output", encoding: .utf8)) == "built\n")
        // A second mount at the same place is refused as such, not stacked.
        let again = run.run([Shell.buildfs, "mount", scenario.stablePath, "--upper", scenario.directory.sub("A-upper")])
        #expect(!again.succeeded && again.stderr.contains("already a buildfs mount"), "\(again.summary)")
        #expect(run.end().isEmpty)
    }

    /// In a PID namespace whose PID 1 never reaps (python, as in many
    /// containers without --init), the daemon stays a zombie after it exits.
    /// umount must see it has exited at once, not wait for a reaper, and
    /// commit must see a live daemon as live.
    @Test func umountReturnsAtOnceWhenPID1NeverReapsTheDaemon() throws {
        let directory = TemporaryDirectory("buildfs-pid1")
        for sub in ["mnt", "upper", "store"] { mkdir(directory.sub(sub), 0o755) }
        // PID 1 runs each step with subprocess.run, which waits for its own
        // child only: the daemon, orphaned by `buildfs mount`, is never reaped.
        let script = """
            import subprocess, sys, time
            buildfs, mnt, upper, store = sys.argv[1:5]
            def step(*args):
                started = time.monotonic()
                done = subprocess.run(args, capture_output=True, text=True)
                print(f"{args[1]} exit={done.returncode} seconds={time.monotonic() - started:.2f}", flush=True)
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr, flush=True)
                return done.returncode
            step(buildfs, "mount", mnt, "--upper", upper, "--store", store)
            with open(mnt + "/file", "w") as f:
                f.write("kept\\n")
            step(buildfs, "commit", mnt, "--key", "pid1", "--store", store)
            step(buildfs, "umount", mnt)
            states = []
            for pid in subprocess.run(["ps", "-eo", "pid=,stat=,comm="], capture_output=True, text=True).stdout.splitlines():
                if "buildfs" in pid:
                    states.append(pid.split()[1])
            print("daemon states after umount:", " ".join(states) or "none", flush=True)
            """
        let outcome = Exec.run(["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc",
                                "python3", "-c", script, Shell.buildfs, directory.sub("mnt"), directory.sub("upper"),
                                directory.sub("store")],
                               environment: scenarioEnvironment(), timeout: 120)
        #expect(outcome.succeeded, "\(outcome.summary)")
        let steps = Dictionary(uniqueKeysWithValues: outcome.stdout.split(separator: "\n").compactMap { line -> (String, (Int, Double))? in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let exit = Int(fields[1].dropFirst(5)), let seconds = Double(fields[2].dropFirst(8))
            else { return nil }
            return (String(fields[0]), (exit, seconds))
        })
        #expect(steps["mount"]?.0 == 0 && steps["commit"]?.0 == 0 && steps["umount"]?.0 == 0, "\(outcome.summary)")
        #expect((steps["umount"]?.1 ?? 99) < 3, "umount waited for a reaper: \(outcome.stdout)")
        // The test means something only if the daemon really stayed a zombie.
        #expect(outcome.stdout.contains("daemon states after umount: Z"), "\(outcome.stdout)")
        #expect(mountPoints(under: directory.sub("mnt")).isEmpty)
        let export = Exec.run([Shell.buildfs, "export", directory.sub("out"), "--from", "pid1", "--store", directory.sub("store")],
                              environment: scenarioEnvironment(), timeout: 60)
        #expect(export.succeeded && (try? String(contentsOfFile: directory.sub("out/file"), encoding: .utf8)) == "kept\n",
                "\(export.summary)")
    }
}
