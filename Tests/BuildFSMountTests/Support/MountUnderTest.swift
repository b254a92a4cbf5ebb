import Foundation
import Glibc
import TestSupport

/// Which passthrough the suite tests: `buildfs mount` (the default), or, to
/// check the tests themselves, `BUILDFS_TEST_MOUNT=bindfs` (a FUSE
/// passthrough in Debian) or `BUILDFS_TEST_MOUNT=bind` (a kernel bind mount:
/// no FUSE, so every POSIX and model test must pass on it; the daemon and
/// permission-isolation tests cannot).
enum MountKind: String, Sendable {
    case buildfs, bindfs, bind

    static var current: MountKind {
        MountKind(rawValue: ProcessInfo.processInfo.environment["BUILDFS_TEST_MOUNT"] ?? "") ?? .buildfs
    }

    var isFUSE: Bool { self != .bind }

    func mountCommand(_ mountpoint: String, upper: String, options: [String], extra: [String] = []) -> [String] {
        switch self {
        case .buildfs:
            return [Shell.buildfs, "mount", mountpoint, "--upper", upper]
                + (options.isEmpty ? [] : ["-o", options.joined(separator: ",")]) + extra
        case .bindfs:
            // buildfs always has default_permissions; bindfs must be asked.
            let all = ["default_permissions"] + options
            return ["bindfs"] + (options.contains("allow_other") ? [] : ["--no-allow-other"])
                + ["-o", all.joined(separator: ","), upper, mountpoint]
        case .bind:
            return ["mount", "--bind", upper, mountpoint]
        }
    }

    func umountCommand(_ mountpoint: String) -> [String] {
        switch self {
        case .buildfs: return [Shell.buildfs, "umount", mountpoint]
        case .bindfs: return ["fusermount3", "-u", mountpoint]
        case .bind: return ["umount", mountpoint]
        }
    }
}

struct MountFailure: Error, CustomStringConvertible {
    var description: String
}

/// One mount of `upper` at `mountpoint`, always undone: `deinit` unmounts,
/// and if that fails, kills the daemon and detaches the mount, so a failing
/// test never leaves a mount behind. A watchdog does the same after
/// `timeLimit` seconds, so a daemon that hangs fails its test (the blocked
/// calls return ENOTCONN) instead of stalling the whole run.
final class MountUnderTest: @unchecked Sendable {
    let mountpoint: String
    let upper: String
    let kind: MountKind
    private let directory: TemporaryDirectory?  // kept alive until unmounted
    private let lock = NSLock()
    private var watchdog: DispatchSourceTimer?
    private var _watchdogFired = false

    /// Mounts and returns once the mount is listed in /proc/mounts as FUSE.
    /// `extraArguments` go to `buildfs mount` (e.g. --from, --store).
    init(upper: String, mountpoint: String, options: [String] = [], timeLimit: Int = 240,
         kind: MountKind = .current, keeping directory: TemporaryDirectory? = nil,
         extraArguments: [String] = []) throws {
        self.upper = upper
        self.mountpoint = mountpoint
        self.kind = kind
        self.directory = directory
        let result = Run.command(kind.mountCommand(mountpoint, upper: upper, options: options, extra: extraArguments),
                                 timeout: 30)
        guard result.status == 0 else {
            cleanUp()
            throw MountFailure(description: "mount failed: \(result.summary)")
        }
        guard let type = fuseMountType(mountpoint), type.hasPrefix("fuse") || !kind.isFUSE else {
            cleanUp()
            throw MountFailure(description: "mount returned 0 but \(mountpoint) is not a FUSE mount "
                               + "(\(fuseMountType(mountpoint) ?? "not mounted")): \(result.summary)")
        }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + .seconds(timeLimit))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            self.lock.withLock { self._watchdogFired = true }
            FileHandle.standardError.write(Data("watchdog: \(mountpoint) still mounted after \(timeLimit) s; killing its daemon\n".utf8))
            self.forceUnmount()
        }
        timer.resume()
        watchdog = timer
    }

    /// Takes charge of a mount made some other way (by a test running the
    /// mount command itself), so that it too is always undone.
    init(adopting mountpoint: String, upper: String, kind: MountKind = .current,
         keeping directory: TemporaryDirectory? = nil) {
        self.mountpoint = mountpoint
        self.upper = upper
        self.kind = kind
        self.directory = directory
    }

    var watchdogFired: Bool { lock.withLock { _watchdogFired } }
    var isMounted: Bool { fuseMountType(mountpoint) != nil }

    /// Unmounts the way a user does (`buildfs umount` or `fusermount3 -u`).
    @discardableResult
    func unmount() -> RunResult {
        Run.command(kind.umountCommand(mountpoint), timeout: 60)
    }

    /// The daemon serving this mount (see `fuseDaemons(serving:)`).
    func daemonPIDs() -> [pid_t] { fuseDaemons(serving: mountpoint) }

    /// Kills the daemon (which aborts the FUSE connection: calls blocked on
    /// it return) and detaches whatever is still mounted.
    func forceUnmount() {
        for pid in daemonPIDs() { kill(pid, SIGKILL) }
        if isMounted { umount2(mountpoint, Int32(MNT_DETACH)) }
    }

    private func cleanUp() {
        watchdog?.cancel()
        if isMounted {
            unmount()
            if isMounted {
                FileHandle.standardError.write(Data("teardown: unmount of \(mountpoint) failed; forcing\n".utf8))
                forceUnmount()
            }
        }
    }

    deinit { cleanUp() }
}

/// The daemons serving a mount point: processes whose command line names
/// the mountpoint (both buildfs and bindfs keep it in argv: what `pgrep -f`
/// would find, but matching a whole argument, so parallel tests' mounts at
/// other paths never match) and that hold /dev/fuse open.
func fuseDaemons(serving mountpoint: String) -> [pid_t] {
    let me = getpid()
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { pid_t($0) }.filter { pid in
        guard pid != me,
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard arguments.contains(mountpoint) else { return false }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.contains {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == "/dev/fuse"
        }
    }.sorted()
}

/// Polls `condition` every 50 ms for up to `seconds`; whether it came true.

/// The file system type of a mount point in /proc/mounts, nil when nothing
/// is mounted there.
func fuseMountType(_ mountpoint: String) -> String? {
    guard let mounts = readProcFile("/proc/mounts") else { return nil }
    var found: String?
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count > 2 && fields[1] == mountpoint { found = String(fields[2]) }  // last one wins
    }
    return found
}

/// A fresh empty upper directory mounted at `mnt`, and a plain directory
/// `plain` beside it on the same file system, so a scenario can run on both.
/// The two roots have the same path length (paths near PATH_MAX compare).
final class MountFixture: @unchecked Sendable {
    let directory = TemporaryDirectory("buildfs-mount")
    let mount: MountUnderTest
    var plain: String { directory.sub("dir") }
    var mnt: String { mount.mountpoint }
    var upper: String { mount.upper }

    /// `snapshot`, if given, fills the plain directory, stores it in the
    /// store it is given, and returns the `buildfs mount` arguments that put
    /// it under the (empty) upper directory.
    init(options: [String] = [], timeLimit: Int = 240,
         snapshot: ((_ plain: String, _ store: String) throws -> [String])? = nil) throws {
        for name in ["dir", "mnt", "upper"] {
            precondition(mkdir(directory.sub(name), 0o755) == 0)
        }
        let extra = try snapshot?(directory.sub("dir"), directory.sub("store")) ?? []
        mount = try MountUnderTest(upper: directory.sub("upper"), mountpoint: directory.sub("mnt"),
                                   options: options, timeLimit: timeLimit, keeping: directory, extraArguments: extra)
    }
}
