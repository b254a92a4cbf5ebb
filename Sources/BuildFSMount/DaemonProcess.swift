import BuildFSCore
import CLinuxCalls
import Foundation
import Glibc

/// Whether a mount's daemon still runs, and waiting for it to end.
///
/// `kill(pid, 0)` is no test: it succeeds for a zombie until some reaper
/// collects it, and the daemon is not our child but PID 1's, which in many
/// containers (`docker run IMAGE CMD` without `--init`) never reaps. A pidfd
/// becomes readable the moment the process exits, zombie or not.
enum DaemonProcess {
    /// True while process `pid` runs (not exited, not a zombie).
    static func isRunning(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        let fd = buildfs_pidfd_open(pid)
        if fd < 0 {
            if errno == ESRCH { return false }
            if let state = stateLetter(pid) { return state != "Z" && state != "X" }
            return kill(pid, 0) == 0 // neither pidfds nor /proc: the best left
        }
        defer { close(fd) }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 0
    }

    /// Waits until `pid` has exited, for at most `seconds`; true if it did.
    @discardableResult
    static func waitForExit(_ pid: Int32, seconds: Double) -> Bool {
        defer { reapIfOurChild(pid) }
        let fd = buildfs_pidfd_open(pid)
        guard fd >= 0 else {
            if errno == ESRCH { return true }
            return pollUntilExited(pid, seconds: seconds) // a kernel before 5.3
        }
        defer { close(fd) }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            let milliseconds = max(0, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            let rc = poll(&entry, 1, milliseconds)
            if rc > 0 { return true }
            if rc == 0 || errno != EINTR { return false }
        }
    }

    private static func pollUntilExited(_ pid: Int32, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if !isRunning(pid) { return true }
            usleep(10_000)
        }
        return false
    }

    /// A daemon started by this very process (`mount --foreground` is not,
    /// tests may be) would stay a zombie until we collect it.
    private static func reapIfOurChild(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// The state letter of /proc/PID/stat (R, S, D, Z, X, ...).
    private static func stateLetter(_ pid: Int32) -> Character? {
        // "PID (comm) S ...": comm may hold spaces and parentheses, so the
        // state is the first field after the last ')'.
        guard let stat = ProcFile.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].first { $0 != " " }
    }
}

extension MountRecord {
    /// Whether the daemon serving this mount still runs.
    public var daemonIsRunning: Bool { DaemonProcess.isRunning(pid) }
}
