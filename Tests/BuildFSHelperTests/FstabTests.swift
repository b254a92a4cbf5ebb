import Foundation
import Testing
import TestSupport

/// mount(8) and /etc/fstab, as a user meets them after mount-helpers/install.sh:
/// `mount -t fuse.buildfs -o upper=...,store=...,from=KEY buildfs MOUNTPOINT`
/// goes through mount.fuse3, which runs /usr/local/bin/buildfs in its mount
/// helper form; `umount MOUNTPOINT` ends it.
@Suite("mount(8) and fstab", .serialized) struct FstabTests {
    /// A store holding one snapshot, "fstab-base": a.txt, dir/b.txt.
    static func storeWithSnapshot(in directory: TemporaryDirectory) throws -> String {
        let tree = directory.sub("tree"), store = directory.sub("store")
        try makeDirectory(tree + "/dir")
        try write("from the snapshot\n", to: tree + "/a.txt")
        try write("nested\n", to: tree + "/dir/b.txt")
        let imported = run([Shell.buildfs, "import", tree, "--key", "fstab-base", "--store", store])
        try #require(imported.succeeded, "\(imported)")
        return store
    }

    @Test func installPutsTheBuiltBinaryWhereMountFindsIt() throws {
        let install = Installation.outcome
        try #require(install.succeeded, "\(install)")
        #expect(install.stdout.contains("installed /usr/local/bin/buildfs"), "\(install)")
        let installed = FileManager.default.contents(atPath: Installation.binary)
        let built = FileManager.default.contents(atPath: Shell.buildfs)
        #expect(installed != nil && installed == built, "/usr/local/bin/buildfs is not the binary just built")
    }

    @Test func mountTypeFuseBuildfsShowsTheSnapshotAndUmountKeepsTheWrites() throws {
        try #require(Installation.outcome.succeeded, "\(Installation.outcome)")
        let directory = TemporaryDirectory("buildfs-helper-fstab")
        let store = try Self.storeWithSnapshot(in: directory)
        let mountPoint = directory.sub("mnt"), upper = directory.sub("upper")
        try makeDirectory(mountPoint)
        try makeDirectory(upper)

        let mount = run(["mount", "-t", "fuse.buildfs", "-o", "upper=\(upper),store=\(store),from=fstab-base",
                         "buildfs", mountPoint], timeout: 60)
        try #require(mount.succeeded, "\(mount)")
        defer { if isMountPoint(mountPoint) { _ = run(["umount", mountPoint], timeout: 60) } }
        #expect(isMountPoint(mountPoint), "mount -t fuse.buildfs returned 0 but nothing is mounted at \(mountPoint)")
        #expect(readText(mountPoint + "/a.txt") == "from the snapshot\n")
        #expect(readText(mountPoint + "/dir/b.txt") == "nested\n")
        try write("written through mount(8)\n", to: mountPoint + "/new.txt")
        #expect(readText(mountPoint + "/new.txt") == "written through mount(8)\n")

        let umount = run(["umount", mountPoint], timeout: 60)
        #expect(umount.succeeded, "\(umount)")
        #expect(!isMountPoint(mountPoint), "still mounted after umount")
        #expect(readText(upper + "/new.txt") == "written through mount(8)\n",
                "the file written through the mount is not in the upper directory")
        #expect(waitUntil(seconds: 10) { processes(mentioning: mountPoint).isEmpty },
                "daemon still running after umount: \(processes(mentioning: mountPoint))")
    }

    @Test func mountTypeFuseBuildfsTakesARemoteStoreAndItsCacheDirectory() throws {
        try #require(Installation.outcome.succeeded, "\(Installation.outcome)")
        let server = try NginxServer()
        let directory = TemporaryDirectory("buildfs-helper-fstab")
        let tree = directory.sub("tree"), cache = directory.sub("cache")
        try makeDirectory(tree)
        try write("from the server\n", to: tree + "/a.txt")
        let imported = run([Shell.buildfs, "import", tree, "--key", "remote-base", "--store", server.url, "--cache-dir", cache])
        try #require(imported.succeeded, "\(imported)")
        let mountPoint = directory.sub("mnt"), upper = directory.sub("upper")
        try makeDirectory(mountPoint)
        try makeDirectory(upper)

        let mount = run(["mount", "-t", "fuse.buildfs",
                         "-o", "upper=\(upper),store=\(server.url),cache_dir=\(cache)-mount,from=remote-",
                         "buildfs", mountPoint], timeout: 60)
        try #require(mount.succeeded, "\(mount)")
        defer { if isMountPoint(mountPoint) { _ = run(["umount", mountPoint], timeout: 60) } }
        #expect(readText(mountPoint + "/a.txt") == "from the server\n")
        #expect(server.count("GET", "cas") > 0, "the snapshot came from the server")
        #expect(run(["umount", mountPoint], timeout: 60).succeeded)
        // What the daemon fetched went into the cache directory it was given
        // (written out as the daemon ends, which plain umount does not wait for).
        #expect(waitUntil(seconds: 10) {
            ((try? FileManager.default.contentsOfDirectory(atPath: cache + "-mount/packs")) ?? []).contains { $0.hasSuffix(".pack") }
        }, "no pack in the mount's cache directory")
    }

    @Test func anFstabLineMountsWithMountDashT() throws {
        try #require(Installation.outcome.succeeded, "\(Installation.outcome)")
        let directory = TemporaryDirectory("buildfs-helper-fstab")
        let store = try Self.storeWithSnapshot(in: directory)
        let mountPoint = directory.sub("mnt"), upper = directory.sub("upper")
        try makeDirectory(mountPoint)
        try makeDirectory(upper)
        // The line README's fstab recipe gives, in a file of our own (mount
        // --fstab), so that the real /etc/fstab is untouched. A restore key
        // by prefix, and options fstab needs that mean nothing to buildfs.
        let fstab = directory.sub("fstab")
        try write("""
            # test fstab
            buildfs  \(mountPoint)  fuse.buildfs  upper=\(upper),store=\(store),from=nothing-,from=fstab-,nofail,noatime  0  0

            """, to: fstab)

        let mount = run(["mount", "-T", fstab, mountPoint], timeout: 60)
        try #require(mount.succeeded, "\(mount)")
        defer { if isMountPoint(mountPoint) { _ = run(["umount", mountPoint], timeout: 60) } }
        #expect(isMountPoint(mountPoint))
        #expect(mount.stdout.contains("over snapshot 'fstab-base'"), "\(mount)")
        #expect(readText(mountPoint + "/dir/b.txt") == "nested\n")
        let mounts = readText("/proc/mounts") ?? ""
        #expect(mounts.contains("buildfs \(mountPoint) fuse.buildfs "), "type or source wrong in /proc/mounts")
        #expect(mounts.split(separator: "\n").first { $0.contains(" \(mountPoint) ") }?.contains("noatime") == true,
                "noatime from the fstab line is not on the mount")

        try write("fstab\n", to: mountPoint + "/from-fstab.txt")
        let umount = run(["umount", mountPoint], timeout: 60)
        #expect(umount.succeeded, "\(umount)")
        #expect(!isMountPoint(mountPoint))
        #expect(readText(upper + "/from-fstab.txt") == "fstab\n")
    }

    /// Every mistake in the options: non-zero exit, one `buildfs: error:` line
    /// saying what to do, and nothing mounted.
    @Test(arguments: [
        ("store=STORE", "upper=DIR is required"),
        ("upper=UPPER,store=STORE,frobnicate", "unknown mount option 'frobnicate'"),
        ("upper=UPPER,store=STORE,from=no-such-key", "no snapshot matches"),
        ("upper=UPPER-missing,store=STORE", "upper directory does not exist"),
    ])
    func aBadOptionGivesOneClearErrorLine(options: String, expected: String) throws {
        try #require(Installation.outcome.succeeded, "\(Installation.outcome)")
        let directory = TemporaryDirectory("buildfs-helper-fstab")
        let store = try Self.storeWithSnapshot(in: directory)
        let mountPoint = directory.sub("mnt"), upper = directory.sub("upper")
        try makeDirectory(mountPoint)
        try makeDirectory(upper)
        let resolved = options.replacingOccurrences(of: "UPPER", with: upper)
            .replacingOccurrences(of: "STORE", with: store)

        let mount = run(["mount", "-t", "fuse.buildfs", "-o", resolved, "buildfs", mountPoint], timeout: 60)
        defer { if isMountPoint(mountPoint) { _ = run(["umount", mountPoint], timeout: 60) } }
        #expect(mount.status != 0, "mount with -o \(options) succeeded: \(mount)")
        #expect(!isMountPoint(mountPoint), "-o \(options) left a mount")
        let errorLines = mount.stderr.split(separator: "\n").filter { $0.hasPrefix("buildfs: error: ") }
        #expect(errorLines.count == 1, "expected one error line: \(mount)")
        #expect(errorLines.first?.contains(expected) == true, "expected '\(expected)': \(mount)")
        #expect(mount.stderr.split(separator: "\n").count == 1, "more than the error line on stderr: \(mount)")
    }
}
