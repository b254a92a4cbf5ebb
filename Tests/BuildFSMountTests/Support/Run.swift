import Foundation
import Glibc

/// Runs a command under `timeout`, so that a hung mount fails one test instead
/// of stalling the suite. Processes are started with posix_spawn and reaped
/// with waitpid, not with Foundation's Process: Process learns that a child
/// ended from a descriptor the child inherits, and a daemon that `buildfs
/// mount` leaves behind inherits it too, so Process would wait for the
/// daemon. For the same reason output goes to files, not pipes, and the
/// child gets no descriptor of ours beyond 0-2 (a daemon holding a file of
/// another test's mount open would make that umount fail).
enum Run {
    @discardableResult
    static func command(_ arguments: [String], timeout seconds: Int = 60,
                        environment: [String: String]? = nil, directory: String? = nil) -> RunResult {
        let out = OutputFile(), err = OutputFile()
        guard let child = Child(["timeout", "-k", "5", "\(seconds)"] + arguments, stdout: out.fd, stderr: err.fd,
                                environment: environment, directory: directory) else {
            return RunResult(status: 127, stdout: "", stderr: "cannot start \(arguments): \(errnoName(errno))")
        }
        let status = child.wait()
        var stderr = err.contents()
        if status == 124 || status == 137 {
            stderr += "[test: \(arguments.joined(separator: " ")) timed out after \(seconds) s]"
        }
        return RunResult(status: status, stdout: out.contents(), stderr: stderr)
    }

    /// A `bash -c` snippet, with the same timeout.
    @discardableResult
    static func bash(_ script: String, timeout seconds: Int = 60, directory: String? = nil) -> RunResult {
        command(["/bin/bash", "-c", script], timeout: seconds, directory: directory)
    }
}

/// A started process (argv[0] looked up in PATH), stdin from /dev/null.
final class Child: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    // glibc has both (2.34, 2.29), but Swift's Glibc module does not show them.
    private static let addCloseFrom = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private static let addChdir = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }

    init?(_ arguments: [String], stdout: Int32, stderr: Int32, environment: [String: String]? = nil,
          directory: String? = nil) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        guard let closeFrom = Child.addCloseFrom, let chdir = Child.addChdir else {
            fatalError("glibc without posix_spawn_file_actions_addclosefrom_np / addchdir_np")
        }
        _ = closeFrom(&actions, 3)
        if let directory { _ = chdir(&actions, directory) }
        let variables = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { $1 }
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = variables.map { strdup($0.key + "=" + $0.value) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, &envp)
        guard rc == 0 else {
            errno = rc
            return nil
        }
        self.pid = pid
    }

    /// The exit status (128 + signal when killed), once it has ended.
    var exitStatus: Int32? {
        if status == nil {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid { status = Child.decode(raw) }
        }
        return status
    }

    var isRunning: Bool { exitStatus == nil }

    func wait() -> Int32 {
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

/// An unlinked temporary file that a child process writes its output to.
private final class OutputFile {
    let fd: Int32

    init() {
        var template = Array("/tmp/buildfs-test-output-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "mkstemp failed")
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

/// A finished command: exit status and both outputs.
struct RunResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    /// Everything a failure message needs.
    var summary: String { "exit \(status), stdout: \(stdout.suffix(2000)), stderr: \(stderr.suffix(2000))" }
}
