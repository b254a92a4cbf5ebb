import Foundation
import Glibc
import Testing
import TestSupport

/// Every mount failure a user can cause: non-zero exit, exactly one
/// `buildfs: error:` line on stderr naming what is wrong, and nothing left
/// mounted or running.
@Suite("Mount errors", .enabled(if: MountKind.current == .buildfs, "buildfs's own messages"))
struct ErrorTests {
    let directory = TemporaryDirectory("buildfs-errors")
    var upper: String { directory.sub("upper") }
    var mnt: String { directory.sub("mnt") }

    init() {
        mkdir(directory.sub("upper"), 0o755)
        mkdir(directory.sub("mnt"), 0o755)
    }

    func mount(_ mountpoint: String, upper: String) -> RunResult {
        Run.command([Shell.buildfs, "mount", mountpoint, "--upper", upper], timeout: 30)
    }

    func expectOneLineError(_ result: RunResult, naming text: String? = nil, mountpoint: String? = nil,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status != 0 && result.status != 124, "\(result.summary)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.count == 1 && result.stderr.hasPrefix("buildfs: error:"),
                "want one `buildfs: error:` line, got: \(result.stderr)", sourceLocation: sourceLocation)
        if let text {
            #expect(result.stderr.contains(text), "the error should name \(text): \(result.stderr)", sourceLocation: sourceLocation)
        }
        if let mountpoint {
            #expect(fuseMountType(mountpoint) == nil, "\(mountpoint) left mounted", sourceLocation: sourceLocation)
            #expect(fuseDaemons(serving: mountpoint).isEmpty, "a daemon was left running", sourceLocation: sourceLocation)
        }
    }

    @Test func mountpointMissing() {
        let missing = directory.sub("no-such-dir")
        expectOneLineError(mount(missing, upper: upper), naming: missing, mountpoint: missing)
    }

    @Test func mountpointIsAFile() {
        let file = directory.sub("file")
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        expectOneLineError(mount(file, upper: upper), naming: file, mountpoint: file)
    }

    @Test func mountpointAlreadyMounted() throws {
        let first = try MountUnderTest(upper: upper, mountpoint: mnt, keeping: directory)
        mkdir(directory.sub("upper2"), 0o755)
        let second = mount(mnt, upper: directory.sub("upper2"))
        expectOneLineError(second, naming: mnt)
        // The first mount is untouched and still serves its upper directory.
        let probe = Probe(root: mnt)
        probe.create("f", "still here")
        #expect(probe.lines == ["create f: ok"])
        #expect(FileManager.default.contents(atPath: upper + "/f") == Data("still here".utf8))
        #expect(fuseDaemons(serving: mnt).count == 1, "daemons: \(fuseDaemons(serving: mnt))")
        #expect(first.unmount().status == 0)
    }

    @Test func upperMissing() {
        let missing = directory.sub("no-such-upper")
        expectOneLineError(mount(mnt, upper: missing), naming: missing, mountpoint: mnt)
    }

    @Test func upperIsAFile() {
        let file = directory.sub("upper-file")
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        expectOneLineError(mount(mnt, upper: file), naming: file, mountpoint: mnt)
    }

    /// `body` runs in a private mount namespace (`unshare -m`), after
    /// `setup`; anything the mount left there is unmounted before the
    /// namespace goes away, so a wrong success leaks nothing.
    func mountInPrivateNamespace(setup: String) -> RunResult {
        let script = """
            set -u
            \(setup) || { echo "test setup failed" >&2; exit 90; }
            "$BUILDFS" mount "$MNT" --upper "$UPPER"; rc=$?
            if grep -q " $MNT " /proc/mounts; then "$BUILDFS" umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT"; fi
            exit $rc
            """
        return Run.command(["env", "BUILDFS=\(Shell.buildfs)", "MNT=\(mnt)", "UPPER=\(upper)",
                            "unshare", "-m", "--propagation", "private", "bash", "-c", script], timeout: 60)
    }

    /// Root can write anywhere except on a read-only file system.
    @Test(.enabled(if: getuid() == 0, "needs root for unshare -m"))
    func upperNotWritable() {
        let result = mountInPrivateNamespace(setup: #"mount --bind "$UPPER" "$UPPER" && mount -o remount,bind,ro "$UPPER""#)
        #expect(result.status != 90, "\(result.summary)")
        expectOneLineError(result, naming: upper, mountpoint: mnt)
    }

    @Test(.enabled(if: getuid() == 0, "needs root for unshare -m"))
    func noDevFuse() {
        let result = mountInPrivateNamespace(setup: "mount --bind /dev/null /dev/fuse")
        #expect(result.status != 90, "\(result.summary)")
        expectOneLineError(result, naming: "/dev/fuse", mountpoint: mnt)
    }

    /// Not in the mount contract's list, but a failure a user causes all the
    /// same (DESIGN: every one ends in one line).
    @Test func umountOfADirectoryThatIsNotMounted() {
        let result = Run.command([Shell.buildfs, "umount", mnt], timeout: 30)
        expectOneLineError(result, naming: mnt)
    }
}
