@testable import BuildFSMount
import Foundation
import Glibc
import Testing
import TestSupport

/// Mount, unmount, mount again, and a daemon killed with SIGKILL: the upper
/// directory is the truth, and `umount` always gets the mountpoint back.
@Suite("Mount lifecycle") struct LifecycleTests {
    let directory = TemporaryDirectory("buildfs-lifecycle")
    var upper: String { directory.sub("upper") }
    var mnt: String { directory.sub("mnt") }

    init() {
        mkdir(directory.sub("upper"), 0o755)
        mkdir(directory.sub("mnt"), 0o755)
    }

    func mount(options: [String] = []) throws -> MountUnderTest {
        try MountUnderTest(upper: upper, mountpoint: mnt, options: options, keeping: directory)
    }

    /// A daemon that may not override file modes (no CAP_DAC_OVERRIDE, like
    /// a user's own mount) cannot serve files without opens, which reopens
    /// the upper file at every write: `cp` writes into a copy it has just
    /// made read-only. It serves real opens instead, and files behave as in
    /// a plain directory.
    @Test(.enabled(if: MountKind.current == .buildfs && getuid() == 0, "buildfs's daemon, started as root"))
    func daemonWithoutModeOverrideServesRealOpens() throws {
        let script = """
            set -e
            printf 'read-only\\n' > ro; chmod 444 ro
            cp ro copy; cat copy
            printf 'first\\n' > f; printf 'second\\n' >> f; cat f
            : > f; printf 'third\\n' >> f; cat f
            exec 3<>g; printf 'kept\\n' >&3; rm g; cat /proc/self/fd/3
            stat -c '%n %a %s' ro copy f
            """
        let plain = directory.sub("plain")
        mkdir(plain, 0o755)
        let expected = Run.command(["bash", "-c", script], directory: plain)
        try #require(expected.status == 0, "in a plain directory: \(expected.summary)")

        let started = Run.command(["setpriv", "--bounding-set=-dac_override", "--"]
                                  + MountKind.buildfs.mountCommand(mnt, upper: upper, options: []), timeout: 30)
        try #require(started.status == 0, "mount: \(started.summary)")
        let mount = MountUnderTest(adopting: mnt, upper: upper, keeping: directory)
        let got = Run.command(["bash", "-c", script], directory: mnt)
        #expect(got.status == 0 && got.stdout == expected.stdout,
                "through the mount: \(got.summary)\nplain: \(expected.stdout)")
        #expect(mount.unmount().status == 0)
    }

    /// The daemon says which FUSE transport and kernel features it runs
    /// with: one line in its log, and `buildfs stats` shows it.
    @Test(.enabled(if: MountKind.current == .buildfs, "buildfs's daemon"))
    func transportIsLoggedAndShownByStats() throws {
        let mount = try self.mount()
        let stats = Run.command([Shell.buildfs, "stats", mnt, "--json", "--store", directory.sub("store")])
        let json = (try? JSONSerialization.jsonObject(with: Data(stats.stdout.utf8))) as? [String: Any]
        let transport = (json?["mount"] as? [String: Any])?["transport"] as? String ?? ""
        #expect(transport.hasPrefix("own FUSE loop") && transport.contains("FUSE 7."), "stats: \(stats.summary)")
        // The kernel here offers it: the daemon takes it.
        #expect(transport.contains("handle_killpriv_v2"), "\(transport)")
        let log = (try? String(contentsOfFile: MountRegistry.logPath(for: MountPreflight.resolvedPath(mnt)),
                               encoding: .utf8)) ?? ""
        #expect(log.components(separatedBy: "\n").filter { $0.contains("serving on the own FUSE loop") } == [
            "buildfs daemon: serving on the \(transport)",
        ], "daemon log: \(log)")
        #expect(mount.unmount().status == 0)
    }

    /// An upper directory on overlayfs (a container's own root file
    /// system) cannot back passthrough files: the kernel refuses the first
    /// (ELOOP), the daemon says so once in its log and in stats, and serves
    /// every read and write itself, for files opened before and after.
    @Test(.enabled(if: MountKind.current == .buildfs && getuid() == 0, "buildfs's daemon, overlayfs as root"))
    func upperOnOverlayfsIsServedWithoutPassthrough() throws {
        for name in ["lower", "overlay-upper", "work", "merged"] { mkdir(directory.sub(name), 0o755) }
        let overlay = Run.command(["mount", "-t", "overlay", "overlay", "-o",
                                   "lowerdir=\(directory.sub("lower")),upperdir=\(directory.sub("overlay-upper")),"
                                   + "workdir=\(directory.sub("work"))", directory.sub("merged")])
        try #require(overlay.status == 0, "mount overlay: \(overlay.summary)")
        defer { umount2(directory.sub("merged"), Int32(MNT_DETACH)) }
        let upperOnOverlay = directory.sub("merged") + "/upper"
        mkdir(upperOnOverlay, 0o755)
        let mount = try MountUnderTest(upper: upperOnOverlay, mountpoint: mnt, keeping: directory)
        let script = """
            set -e
            head -c 300000 /dev/urandom > a; exec 3<a; printf tail >> a
            cmp -n 300000 a /proc/self/fd/3; tail -c 4 a; echo
            dd if=/dev/zero of=big bs=64k count=64 status=none; stat -c %s big
            """
        let got = Run.command(["bash", "-c", script], directory: mnt)
        #expect(got.status == 0 && got.stdout == "tail\n4194304\n", "\(got.summary)")
        let log = (try? String(contentsOfFile: MountRegistry.logPath(for: MountPreflight.resolvedPath(mnt)),
                               encoding: .utf8)) ?? ""
        #expect(log.components(separatedBy: "passthrough off for this mount").count == 2, "daemon log: \(log)")
        let stats = Run.command([Shell.buildfs, "stats", mnt, "--json", "--store", directory.sub("store")])
        #expect(stats.stdout.contains("passthrough refused"), "stats: \(stats.summary)")
        #expect(mount.unmount().status == 0)
        #expect(FileManager.default.contents(atPath: upperOnOverlay + "/big")?.count == 4 << 20)
    }

    /// A tree with everything a restore must keep (owners, odd modes, ns
    /// mtimes, symlinks, hard links), copied onto the mount with cp -a, is
    /// the same through the mount, in the upper directory once umount has
    /// returned, and through a second mount of the same upper directory.
    @Test func remountShowsTheSameTree() throws {
        var generator = RandomTree(seed: 5)
        generator.totalBudget = 6 * 1024 * 1024
        generator.generate(at: directory.sub("source"))
        let expected = TreeListing(of: directory.sub("source"))

        let first = try mount()
        let copy = Run.command(["cp", "-a", directory.sub("source") + "/.", mnt], timeout: 180)
        try #require(copy.status == 0, "cp -a onto the mount: \(copy.summary)")
        let throughMount = TreeListing(of: mnt).differences(from: expected)
        #expect(throughMount.isEmpty, "through the mount: \(throughMount.prefix(5))")

        let daemons = first.daemonPIDs()
        let umount = first.unmount()
        #expect(umount.status == 0, "\(umount.summary)")
        #expect(!first.isMounted)
        let inUpper = TreeListing(of: upper).differences(from: expected)
        #expect(inUpper.isEmpty, "upper directory after umount: \(inUpper.prefix(5))")
        #expect(waitUntil(seconds: 10) { daemons.allSatisfy { kill($0, 0) != 0 } },
                "daemon \(daemons) still running after umount")

        let second = try mount()
        let remounted = TreeListing(of: mnt).differences(from: expected)
        #expect(remounted.isEmpty, "after a remount: \(remounted.prefix(5))")
        #expect(second.unmount().status == 0)
    }

    /// What the mount shows, mtimes to the nanosecond included, is what the
    /// next mount shows: ninja and make compare mtimes with the ones they
    /// saw before, so a time that moves at a remount means a rebuild.
    /// Each operation is one whose mtime a kernel cache could get wrong.
    @Test func mtimesSeenThroughTheMountSurviveARemount() throws {
        let first = try mount()
        let p = Probe(root: mnt)
        for name in ["written", "truncated-same-size", "ftruncated-same-size", "truncated-shorter", "renamed", "linked"] {
            p.create(name, "some content")
        }
        let fd = p.open("written", O_WRONLY | O_APPEND)
        p.pwrite("more", fd, Array(" and more".utf8), at: 0)
        p.check("close", close(fd))
        p.check("truncate to the same size", truncate(p.path("truncated-same-size"), 12))
        let other = p.open("ftruncated-same-size", O_WRONLY)
        p.check("ftruncate to the same size", ftruncate(other, 12))
        p.check("close", close(other))
        p.check("truncate shorter", truncate(p.path("truncated-shorter"), 4))
        p.check("rename", rename(p.path("renamed"), p.path("renamed-now")))
        p.check("link", link(p.path("linked"), p.path("second-name")))
        p.check("mkdir", mkdir(p.path("dir"), 0o755))
        p.create("dir/inside", "x")
        #expect(!p.lines.contains { $0.contains(": E") }, "\(p.lines)")
        let seen = TreeListing(of: mnt)

        #expect(first.unmount().status == 0)
        let inUpper = TreeListing(of: upper).differences(from: seen)
        #expect(inUpper.isEmpty, "upper directory (left) vs what the mount showed (right): \(inUpper)")
        let second = try mount()
        let remounted = TreeListing(of: mnt).differences(from: seen)
        #expect(remounted.isEmpty, "after a remount (left) vs before (right): \(remounted)")
        #expect(second.unmount().status == 0)
    }

    /// SIGTERM to the daemon while a process has its working directory in
    /// the mount: the mount is detached at once, and the daemon's loop
    /// threads, blocked in reads the lazy unmount does not end, are woken
    /// so that it exits within seconds instead of serving on.
    @Test(.enabled(if: MountKind.current == .buildfs, "buildfs's daemon"))
    func sigtermEndsTheDaemonOfABusyMount() throws {
        let mounted = try mount()
        let busy = try Child(["sh", "-c", "cd '\(mnt)' && exec sleep 30"], stdout: -1, stderr: -1)
        defer {
            kill(busy.pid, SIGKILL)
            _ = busy.wait()
        }
        #expect(waitUntil(seconds: 5) { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(busy.pid)/cwd")) == mnt })
        let daemons = mounted.daemonPIDs()
        try #require(!daemons.isEmpty, "no daemon found for \(mnt)")
        for pid in daemons { kill(pid, SIGTERM) }
        #expect(waitUntil(seconds: 6) { daemons.allSatisfy { kill($0, 0) != 0 } },
                "the daemon still runs 6 s after SIGTERM with \(mnt) busy")
        #expect(!mountPoints(under: directory.path).contains(mnt), "still in the mount table")
    }

    /// kill -9 of the daemon: calls on the mountpoint fail at once (no hang),
    /// `buildfs umount` recovers it, what was written and closed before the
    /// kill is in the upper directory, and a new mount works.
    /// The daemon is found as the process whose argv names the mountpoint
    /// and that holds /dev/fuse open (see `fuseDaemons(serving:)`).
    @Test(.enabled(if: MountKind.current.isFUSE, "needs a daemon"))
    func umountRecoversAfterTheDaemonIsKilled() throws {
        let mounted = try mount()
        let content = Array("written before the kill\n".utf8)
        let probe = Probe(root: mnt)
        probe.create("before-kill", String(decoding: content, as: UTF8.self))
        #expect(probe.lines == ["create before-kill: ok"])

        let daemons = mounted.daemonPIDs()
        try #require(!daemons.isEmpty, "no process with \(mnt) in its argv holds /dev/fuse")
        for pid in daemons { kill(pid, SIGKILL) }
        #expect(waitUntil(seconds: 10) { daemons.allSatisfy { kill($0, 0) != 0 } }, "daemon survived SIGKILL")

        let dead = Run.command(["stat", mnt + "/before-kill"], timeout: 15)
        #expect(dead.status != 0 && dead.status != 124, "stat on a dead mount should fail at once: \(dead.summary)")

        let umount = mounted.unmount()
        #expect(umount.status == 0, "umount of a dead mount: \(umount.summary)")
        #expect(!mounted.isMounted, "still in /proc/mounts after umount")
        #expect(FileManager.default.contents(atPath: upper + "/before-kill").map { [UInt8]($0) } == content)

        let again = try mount()
        #expect(Probe(root: mnt).contents("before-kill") == content)
        #expect(again.unmount().status == 0)
    }

    /// `out=$(buildfs mount ...)` in a CI script must return: the daemon may
    /// not keep the caller's stdout or stderr open.
    @Test func mountReturnsWhenItsOutputIsAPipe() throws {
        let command = MountKind.current.mountCommand(mnt, upper: upper, options: [])
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let guardian = MountUnderTest(adopting: mnt, upper: upper, keeping: directory)
        let result = Run.bash("out=$(\(command) 2>&1); echo \"status $?\"", timeout: 30)
        #expect(result.stdout == "status 0\n", "\(result.summary)")
        #expect(guardian.isMounted)
        #expect(guardian.unmount().status == 0)
    }

    @Test(.enabled(if: MountKind.current == .buildfs, "buildfs's own option"))
    func foregroundMountRunsUntilUnmounted() throws {
        let guardian = MountUnderTest(adopting: mnt, upper: upper, keeping: directory)
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let started = try? Child([Shell.buildfs, "mount", mnt, "--upper", upper, "--foreground"], stdout: devNull, stderr: devNull)
        let process = try #require(started, "cannot start buildfs")
        defer { if process.isRunning { kill(process.pid, SIGKILL) } }

        try #require(waitUntil(seconds: 20) { guardian.isMounted }, "not mounted 20 s after starting --foreground")
        #expect(process.isRunning, "--foreground returned while mounted")
        let probe = Probe(root: mnt)
        probe.create("f", "foreground")
        #expect(probe.lines == ["create f: ok"])
        #expect(guardian.unmount().status == 0)
        #expect(waitUntil(seconds: 20) { !process.isRunning }, "--foreground still running after umount")
        #expect(process.exitStatus == 0, "--foreground exit status")
        #expect(FileManager.default.contents(atPath: upper + "/f") == Data("foreground".utf8))
    }

    @Test(.enabled(if: MountKind.current == .buildfs, "buildfs's own help"))
    func mountAndUmountHaveHelpWithAnExample() throws {
        for command in ["mount", "umount"] {
            let help = Run.command([Shell.buildfs, command, "--help"])
            #expect(help.status == 0 && help.stdout.contains("Example:") && help.stdout.contains("USAGE: buildfs \(command)"),
                    "\(command) --help: \(help.summary)")
        }
    }
}
