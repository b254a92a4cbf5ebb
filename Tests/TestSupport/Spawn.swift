import Foundation
import Glibc

/// A started process, the way a shell starts one: argv[0] looked up in
/// PATH, stdin from /dev/null, stdout/stderr to the given descriptors, no
/// other descriptor of ours, no signal blocked and default dispositions.
///
/// Not Foundation's Process, for three reasons found the hard way: Process
/// notices a child's exit through a descriptor the child inherits, so a
/// daemon that `buildfs mount` leaves behind makes it wait forever; it
/// passes on the test thread's blocked SIGTERM, so `timeout` and `kill`
/// stop working in the child; and pipes would block on the daemon as well.
public final class Child: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    // glibc has both (2.34, 2.29), but Swift's Glibc module does not show them.
    private static let addCloseFrom = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private static let addChdir = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }

    /// `environment`: the child's whole environment (nil: this process's).
    /// `stdout`/`stderr` -1: /dev/null.
    public init(_ arguments: [String], stdout: Int32 = -1, stderr: Int32 = -1,
                environment: [String: String]? = nil, directory: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        if stdout >= 0 { posix_spawn_file_actions_adddup2(&actions, stdout, 1) }
        if stderr >= 0 { posix_spawn_file_actions_adddup2(&actions, stderr, 2) }
        guard let closeFrom = Child.addCloseFrom, let chdir = Child.addChdir else {
            fatalError("glibc without posix_spawn_file_actions_addclosefrom_np / addchdir_np")
        }
        _ = closeFrom(&actions, 3)
        if let directory { _ = chdir(&actions, directory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t(), defaults = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&defaults)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let variables = environment ?? ProcessInfo.processInfo.environment
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = variables.map { strdup($0.key + "=" + $0.value) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, &envp)
        guard rc == 0 else { throw SpawnFailure(description: "cannot run \(arguments[0]): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    /// The exit status (128 + signal when killed), once it has ended.
    public var exitStatus: Int32? {
        if status == nil {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid { status = Child.decode(raw) }
        }
        return status
    }

    public var isRunning: Bool { exitStatus == nil }

    @discardableResult
    public func wait() -> Int32 {
        while status == nil {
            var raw: Int32 = 0
            let rc = waitpid(pid, &raw, 0)
            if rc == pid { status = Child.decode(raw) } else if errno != EINTR { status = -1 }
        }
        return status!
    }

    private static func decode(_ raw: Int32) -> Int32 {
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }
}

public struct SpawnFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// An unlinked temporary file a child writes its output to (a pipe would
/// block on a daemon holding it open).
public final class OutputFile: @unchecked Sendable {
    public let fd: Int32

    public init() {
        var template = Array("/tmp/buildfs-test-output-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "mkstemp failed")
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC) // only the child it is for gets it (dup2 clears the flag)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }

    public func contents() -> String {
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

/// Runs a command to its end under `timeout` (so a hung mount fails one
/// test instead of stalling the suite) and collects what it printed.
/// `environment`: the whole environment (nil: this process's).
public func runCommand(_ arguments: [String], timeout seconds: Int = 600, environment: [String: String]? = nil,
                       directory: String? = nil) -> CommandResult {
    let out = OutputFile(), err = OutputFile()
    let status: Int32
    do {
        status = try Child(["timeout", "-k", "5", "\(seconds)"] + arguments, stdout: out.fd, stderr: err.fd,
                           environment: environment, directory: directory).wait()
    } catch {
        return CommandResult(status: 127, stdout: "", stderr: "\(error)")
    }
    var stderr = err.contents()
    if status == 124 || status == 137 { stderr += "[test: \(arguments.joined(separator: " ")) timed out after \(seconds) s]" }
    return CommandResult(status: status, stdout: out.contents(), stderr: stderr)
}

/// Polls `condition` every 100 ms for up to `seconds`; whether it came true.
public func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(100_000)
    }
    return condition()
}
