import Foundation
import Glibc
import Testing
import TestSupport

/// What the issue's scenarios share: one store, one stable mount path used by
/// every run, and runs that each get their own mount namespace and their own
/// fresh upper directory, like successive CI containers on one host.
/// Everything lives in one temporary directory, so scenarios can run in
/// parallel.
final class StablePathScenario {
    let directory: TemporaryDirectory
    /// The path every run mounts at: the same string in each run.
    let stablePath: String
    let store: String
    private var runs: [ScenarioRun] = []

    init(_ label: String) {
        directory = TemporaryDirectory("buildfs-scenario-\(label)")
        stablePath = directory.sub("work")
        store = directory.sub("store")
        precondition(mkdir(stablePath, 0o755) == 0)
    }

    /// A new container run: a private mount namespace with a fresh, empty
    /// upper directory mounted at the stable path, over the snapshot `from`
    /// when one is given. `setup` runs in the run before the mount (what the
    /// container engine mounts first). Returns once the mount is up inside
    /// the run.
    func startRun(_ name: String, from key: String? = nil, setup: [[String]] = []) throws -> ScenarioRun {
        let upper = directory.sub("\(name)-upper")
        precondition(mkdir(upper, 0o755) == 0, "\(upper) exists: run names must be unique")
        let container = try ContainerRun(name: name)
        let run = ScenarioRun(container: container, upper: upper, mountpoint: stablePath, store: store)
        runs.append(run)
        for step in setup {
            let outcome = container.run(step, timeout: 60)
            guard outcome.succeeded else { throw ContainerRunFailure(description: "\(name): setup: \(outcome.summary)") }
        }
        var arguments = [Shell.buildfs, "mount", stablePath, "--upper", upper, "--store", store]
        if let key { arguments += ["--from", key] }
        let mount = container.run(arguments, timeout: 60)
        let mounted = container.mountPoints(under: stablePath)
        guard mount.succeeded, mounted == [stablePath] else {
            throw ContainerRunFailure(description: "\(name): mount failed (mounts there now: \(mounted)): "
                                      + "\(mount.summary)\n\(daemonLog())")
        }
        return run
    }

    /// `buildfs export` of snapshot `key` from the scenario's store into `target`.
    func export(_ key: String, to target: String) -> Outcome {
        Exec.run([Shell.buildfs, "export", target, "--from", key, "--store", store],
                 environment: scenarioEnvironment(), timeout: 120)
    }

    /// The tails of the daemon logs of the stable path (buildfs names a log
    /// after the mount namespace and the mount point: one per run).
    func daemonLog() -> String {
        let environment = ProcessInfo.processInfo.environment
        let runtime: String
        if let xdg = environment["XDG_RUNTIME_DIR"], !xdg.isEmpty {
            runtime = xdg + "/buildfs"
        } else {
            runtime = geteuid() == 0 ? "/run/buildfs" : "/tmp/buildfs-\(geteuid())"
        }
        let suffix = "-" + registryName(stablePath) + ".log"
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? []).filter { $0.hasSuffix(suffix) }
        if logs.isEmpty { return "(no daemon log *\(suffix) in \(runtime))" }
        return logs.map { name in
            let text = (try? String(contentsOfFile: runtime + "/" + name, encoding: .utf8)) ?? ""
            return "daemon log \(runtime)/\(name):\n\(text.suffix(2000))"
        }.joined(separator: "\n")
    }

    /// Ends every run that is still going (unmounting as a user would, then
    /// killing what is left) and records an issue for anything left behind:
    /// a mount under the scenario's directory, a process in a run's
    /// namespace. Call it with `defer`, so a failing test cleans up too.
    func finish() {
        for run in runs {
            for problem in run.end() { Issue.record("cleanup: \(problem)") }
        }
        let hostMounts = mountPoints(under: directory.path)
        if !hostMounts.isEmpty { Issue.record("mounts left in the test's namespace: \(hostMounts)") }
        for run in runs {
            // A namespace goes away, with all its mounts, with its last process.
            if !waitUntil(seconds: 10, { processes(in: run.container.namespace).isEmpty }) {
                let left = processes(in: run.container.namespace)
                Issue.record("\(run.container.name): processes still in its namespace: \(left)")
            }
        }
    }
}

/// One container run of a scenario, with the stable path mounted in it.
final class ScenarioRun {
    let container: ContainerRun
    let upper: String
    let mountpoint: String
    let store: String
    private var finished = false

    init(container: ContainerRun, upper: String, mountpoint: String, store: String) {
        self.container = container
        self.upper = upper
        self.mountpoint = mountpoint
        self.store = store
    }

    /// Runs a step of the build inside the run.
    func run(_ arguments: [String], environment: [String: String] = scenarioEnvironment(),
             directory: String = "/", timeout: Int = 120) -> Outcome {
        container.run(arguments, environment: environment, directory: directory, timeout: timeout)
    }

    func commit(key: String) -> Outcome {
        run([Shell.buildfs, "commit", mountpoint, "--key", key, "--store", store], timeout: 300)
    }

    /// The mount's counters from `buildfs stats --json` (bytesServedFromStore,
    /// filesCopiedUp, ...). The daemon publishes them four times a second, so this
    /// polls up to `seconds` for `until` to hold; the last counters and the
    /// command's outcome either way.
    func mountCounters(waitingUpTo seconds: Double = 5,
                       until condition: ([String: Int]) -> Bool) -> (counters: [String: Int], outcome: Outcome) {
        var last: (counters: [String: Int], outcome: Outcome)!
        _ = waitUntil(seconds: seconds) {
            let outcome = run([Shell.buildfs, "stats", mountpoint, "--json", "--store", store])
            let json = (try? JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8))) as? [String: Any]
            let mount = json?["mount"] as? [String: Any] ?? [:]
            last = (mount.compactMapValues { ($0 as? NSNumber)?.intValue }, outcome)
            return condition(last.counters)
        }
        return last
    }

    /// Bytes allocated to regular files in the upper directory (what this
    /// run has written, or copied up; sparse placeholders count nothing).
    func upperFileBytes() -> Int {
        var total = 0
        let walker = FileManager.default.enumerator(atPath: upper)
        while let relative = walker?.nextObject() as? String {
            // The mount's own bookkeeping (the read trace) is not copied-up data.
            if relative.hasPrefix(".buildfs-internal/") { continue }
            var st = stat()
            if lstat(upper + "/" + relative, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
                total += Int(st.st_blocks) * 512
            }
        }
        return total
    }

    /// The run's last step, `buildfs umount`, then the end of its namespace.
    /// Problems, empty when everything was unmounted cleanly. Safe to call
    /// more than once.
    func end() -> [String] {
        guard !finished else { return [] }
        finished = true
        var problems: [String] = []
        if !container.mountPoints(under: mountpoint).isEmpty {
            let umount = run([Shell.buildfs, "umount", mountpoint], timeout: 60)
            if !umount.succeeded { problems.append("\(container.name): umount: \(umount.summary)") }
        }
        let left = container.mountPoints(under: mountpoint)
        if !left.isEmpty { problems.append("\(container.name): still mounted after umount: \(left)") }
        // The daemon must be gone once umount returns, like every build step.
        if !waitUntil(seconds: 5, { container.strayProcesses().isEmpty }) {
            problems.append("\(container.name): processes left in the run after umount: "
                            + "\(container.strayProcesses())")
        }
        container.end()
        return problems
    }
}

/// The file name buildfs's mount registry uses for a mount point (what
/// SafeFileName.escape does for short names).
private func registryName(_ text: String) -> String {
    var out = ""
    for (i, byte) in text.utf8.enumerated() {
        let scalar = Unicode.Scalar(byte)
        let plain = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x2D || byte == 0x5F || (byte == 0x2E && i > 0)
        out += plain ? String(Character(scalar)) : String(format: "%%%02X", byte)
    }
    return out
}
