import Foundation
import Glibc

/// A finished command: exit status and both outputs.
struct Outcome: Sendable {
    var command: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 }

    /// Everything a failure message needs.
    var summary: String {
        "`\(command.joined(separator: " "))`: exit \(status)\n"
            + "stdout: \(stdout.suffix(3000))\nstderr: \(stderr.suffix(3000))"
    }
}

/// Runs programs under `timeout` with an explicit environment, so a hung
/// mount fails one step instead of stalling the suite. Output goes to
/// unlinked files rather than pipes: `buildfs mount` leaves a daemon behind,
/// and a pipe the daemon kept open would make the reader wait forever.
enum Exec {
    static func run(_ arguments: [String], environment: [String: String],
                    directory: String? = nil, timeout seconds: Int) -> Outcome {
        let out = OutputFile(), err = OutputFile()
        let inDirectory = directory.map { ["/usr/bin/env", "-C", $0] } ?? []
        let command = ["/usr/bin/timeout", "-k", "5", "\(seconds)"] + inDirectory + arguments
        let status: Int32
        do {
            let pid = try spawn(command, environment: environment, stdout: out.fd, stderr: err.fd)
            status = waitForExit(pid)
        } catch {
            return Outcome(command: arguments, status: 127, stdout: "", stderr: "\(error)")
        }
        var stderr = err.contents()
        if status == 124 || status == 137 { stderr += "\n[test: timed out after \(seconds) s]" }
        return Outcome(command: arguments, status: status, stdout: out.contents(), stderr: stderr)
    }
}

struct SpawnFailure: Error, CustomStringConvertible {
    var description: String
}

/// Starts a program (an absolute path) the way a shell would: no signal
/// blocked, default dispositions, stdin from /dev/null. Foundation's Process
/// passes on the signal mask of the test thread that starts it, which has
/// SIGTERM blocked: `timeout`, the buildfs daemon and a `kill` would not
/// behave as they do in a real container.
func spawn(_ arguments: [String], environment: [String: String],
           stdout: Int32 = -1, stderr: Int32 = -1) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    if stdout >= 0 { posix_spawn_file_actions_adddup2(&actions, stdout, 1) }
    if stderr >= 0 { posix_spawn_file_actions_adddup2(&actions, stderr, 2) }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t(), defaults = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&defaults)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard result == 0 else {
        throw SpawnFailure(description: "cannot run \(arguments[0]): \(String(cString: strerror(result)))")
    }
    return pid
}

/// Waits for a child; its exit status, or 128 + the signal that killed it.
@discardableResult
func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// The environment of this test process without anything that would change
/// what the scenarios measure (a CCACHE_BASEDIR would hide the very path
/// dependence the stable mount path is there to solve; CARGO_TARGET_DIR
/// would move target/ off the mount), plus `extra`.
func scenarioEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    let inherited = ProcessInfo.processInfo.environment.filter { name, _ in
        !name.hasPrefix("CCACHE_") && !name.hasPrefix("CARGO_") && name != "RUSTFLAGS"
    }
    return inherited.merging(extra) { $1 }
}

/// An unlinked temporary file that a child process writes its output to.
private final class OutputFile {
    let fd: Int32

    init() {
        var template = Array("/tmp/buildfs-scenario-output-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "mkstemp failed")
        // Only the child it is meant for gets it (dup2 clears the flag there).
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }

    func contents() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let n = pread(fd, &buffer, buffer.count, offset)
            if n <= 0 { break }
            bytes += buffer[0..<n]
            offset += off_t(n)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    deinit { close(fd) }
}

/// Polls `condition` every 100 ms for up to `seconds`; whether it came true.
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(100_000)
    }
    return condition()
}

/// Where a build step runs: inside a container run, or on the host (the
/// controls without buildfs).
protocol StepRunner {
    func run(_ arguments: [String], environment: [String: String], directory: String, timeout: Int) -> Outcome
}

extension ScenarioRun: StepRunner {}

/// Steps run directly in the test's own namespace.
struct HostRunner: StepRunner {
    func run(_ arguments: [String], environment: [String: String], directory: String, timeout: Int) -> Outcome {
        Exec.run(arguments, environment: environment, directory: directory, timeout: timeout)
    }
}
