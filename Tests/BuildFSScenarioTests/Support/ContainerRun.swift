import Foundation
import Glibc
import TestSupport

struct ContainerRunFailure: Error, CustomStringConvertible {
    var description: String
}

/// One CI job's container, as far as mounts go: a private mount namespace
/// (`unshare -m --propagation private`), held open by a sleeping process, in
/// which every step of the run executes through `nsenter`. A mount made in
/// it is invisible to this test process and to the other runs, so two runs
/// can use the same stable path the way two containers use `/work`.
final class ContainerRun {
    let name: String
    /// The holder: `unshare` execs `sleep`, so this is a process inside the namespace.
    private let holderProcess: Child
    var pid: pid_t { holderProcess.pid }
    /// `mnt:[inode]`, the namespace's identity, as /proc/PID/ns/mnt shows it.
    let namespace: String
    private(set) var ended = false

    init(name: String, lifetime seconds: Int = 1800) throws {
        self.name = name
        holderProcess = try Child(["/usr/bin/unshare", "-m", "--propagation", "private", "--", "sleep", "\(seconds)"],
                                  environment: scenarioEnvironment())
        // Until unshare(2) has run, the holder is still in our namespace and
        // nsenter would enter the wrong one.
        let ours = mountNamespace(of: getpid())
        let holder = holderProcess.pid
        var seen: String?
        _ = waitUntil(seconds: 10) {
            seen = mountNamespace(of: holder)
            return seen != nil && seen != ours
        }
        guard let seen, seen != ours else {
            kill(holder, SIGKILL)
            holderProcess.wait()
            throw ContainerRunFailure(description: "\(name): unshare -m did not make a new mount namespace "
                                      + "(needs root or CAP_SYS_ADMIN)")
        }
        namespace = seen
    }

    /// Runs `arguments` inside the namespace, in `directory` as the run sees it.
    func run(_ arguments: [String], environment: [String: String] = scenarioEnvironment(),
             directory: String = "/", timeout: Int = 120) -> Outcome {
        precondition(!ended, "\(name) has ended")
        // env -C: nsenter's own --wd opens the directory before it enters
        // the namespace, where the mount is not.
        var outcome = Exec.run(["/usr/bin/nsenter", "-t", "\(pid)", "-m", "--", "/usr/bin/env", "-C", directory]
                               + arguments, environment: environment, timeout: timeout)
        outcome.command = ["[\(name)]"] + arguments
        return outcome
    }

    /// Mount points at or below `path` in this run's namespace.
    func mountPoints(under path: String) -> [String] {
        guard !ended, let mounts = readProcFile("/proc/\(pid)/mounts") else { return [] }
        return mounts.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 2 else { return nil }
            let point = String(fields[1])
            return point == path || point.hasPrefix(path + "/") ? point : nil
        }
    }

    /// Processes other than the holder still inside the namespace (a daemon
    /// that was not unmounted, a build that did not finish).
    func strayProcesses() -> [pid_t] {
        processes(in: namespace).filter { $0 != pid }
    }

    /// Ends the run: kills whatever is still inside, then the holder. The
    /// namespace, and every mount in it, goes away with its last process.
    func end() {
        guard !ended else { return }
        for stray in strayProcesses() { kill(stray, SIGKILL) }
        kill(pid, SIGKILL)
        holderProcess.wait()
        ended = true
    }

    deinit { end() }
}

/// `mnt:[inode]` for a process, nil when it is gone.
func mountNamespace(of pid: pid_t) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
}

/// Every process whose mount namespace is `namespace`.
func processes(in namespace: String) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { pid_t($0) }.filter { mountNamespace(of: $0) == namespace }.sorted()
}
