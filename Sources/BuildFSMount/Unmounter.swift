import BuildFSCore
import CLinuxCalls
import Foundation
import Glibc

/// `buildfs umount`: unmounts, waits for the daemon to finish, and makes the
/// upper directory durable. Also clears a mount whose daemon was killed.
public enum Unmounter {
    public static func unmount(_ given: String) throws {
        let mountpoint = MountPreflight.resolvedPath(given)
        guard let entry = MountPreflight.mountEntries().last(where: { $0.mountpoint == mountpoint }) else {
            MountRegistry.remove(mountpoint)
            throw BuildFSError.badTarget(path: given, reason: "is not mounted")
        }
        guard entry.type == "fuse.buildfs" else {
            throw BuildFSError.badTarget(path: given, reason: "is a \(entry.type) mount, not a buildfs mount")
        }
        let record = MountRegistry.read(mountpoint)
        try detach(mountpoint)
        if let record {
            DaemonProcess.waitForExit(record.pid, seconds: 30)
            // What the daemon wrote is in the page cache of the upper
            // directory's file system: flush it before returning.
            let fd = open(record.upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                buildfs_syncfs(fd)
                close(fd)
            }
        }
        MountRegistry.remove(mountpoint)
    }

    /// A plain unmount first: it waits for dirty pages and refuses while
    /// files are open. A dead daemon's mount is torn down lazily.
    static func detach(_ mountpoint: String) throws {
        if geteuid() != 0 {
            let status = run(["fusermount3", "-u", mountpoint])
            if status == 0 { return }
            if run(["fusermount3", "-uz", mountpoint]) == 0 { return }
            throw BuildFSError.badTarget(path: mountpoint, reason: "cannot unmount; close the programs using it (fuser -vm \(mountpoint))")
        }
        if umount2(mountpoint, 0) == 0 { return }
        let err = errno
        if err == EBUSY && daemonAlive(mountpoint) {
            throw BuildFSError.badTarget(path: mountpoint, reason: "is busy: programs still use it (see `fuser -vm \(mountpoint)`); close them and retry")
        }
        guard umount2(mountpoint, Int32(MNT_DETACH)) == 0 else {
            throw SystemCallError("unmount", mountpoint)
        }
    }

    static func daemonAlive(_ mountpoint: String) -> Bool {
        guard let record = MountRegistry.read(mountpoint) else { return true }
        return record.daemonIsRunning
    }

    static func run(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
