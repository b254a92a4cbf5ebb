import ArgumentParser
import BuildFSCore
import BuildFSMount
import Foundation
import Glibc

struct MountCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a per-run directory at a stable path (FUSE), optionally over a snapshot.",
        discussion: """
            Shows the upper directory at MOUNTPOINT; everything written through the
            mount lands in the upper directory, so a new mount of the same upper
            directory (after a crash, or in the next container) shows the same tree.
            With --from, the snapshot found like `export` finds it lies under the upper
            directory: nothing is copied at mount time, files are read from the store on
            demand and copied up on their first write, and `buildfs commit` saves what
            the mount shows as a new snapshot. Returns once the mount is ready; the
            daemon keeps running in the background (logging to
            \(MountRegistry.directory)/...log) until `buildfs umount`. The kernel
            checks permissions against the file modes (default_permissions); add
            -o allow_other to let other users in. Do not write to the upper directory
            directly while it is mounted.

            Example:
              mkdir -p /work /tmp/run-42
              buildfs mount /work --upper /tmp/run-42 --from linux-$COMMIT --from linux-
              CCACHE_DIR=/work/.ccache make -C /work/project -j2
              buildfs commit /work --key linux-$COMMIT
              buildfs umount /work
            """)

    @Argument(help: ArgumentHelp("Where to mount (an existing directory).", valueName: "mountpoint"))
    var mountpoint: String

    @Option(help: ArgumentHelp("The directory that holds this run's files.", valueName: "dir"))
    var upper: String

    @Option(name: .customShort("o"), help: ArgumentHelp(
        "Mount options, comma-separated: allow_other, ro, noatime, nosuid, nodev, noexec, ...",
        valueName: "options"))
    var options: [String] = []

    @Option(help: ArgumentHelp(
        "The snapshot to show under the upper directory: a key or key prefix (repeatable; first match wins).",
        valueName: "key"))
    var from: [String] = []

    @Flag(help: "Stay in the foreground (the daemon itself; logs go to stderr).")
    var foreground = false

    @OptionGroup var storeOptions: StoreOptions

    /// Set for the daemon started by a background mount: its stdout is the
    /// pipe on which it says READY or ERROR.
    static let notifyVariable = "BUILDFS_DAEMON_NOTIFY"

    func execute() throws {
        let fuseOptions = try MountOptions.parse(options)
        let point = MountPreflight.resolvedPath(mountpoint)
        let upperDir = MountPreflight.resolvedPath(upper)
        try MountPreflight.check(mountpoint: point, upper: upperDir)
        if ProcessInfo.processInfo.environment[MountCommand.notifyVariable] == "1" {
            runDaemon(point, upperDir, fuseOptions)
        } else if foreground {
            try serve(point, upperDir, fuseOptions) { snapshot in
                print("mounted \(upperDir)\(snapshot.map { " over snapshot '\($0.key)'" } ?? "") at \(point) "
                      + "(foreground; Ctrl-C or `buildfs umount \(point)` to stop)")
            }
        } else {
            let shown = try startDaemon(point, upperDir, fuseOptions)
            print("mounted \(upperDir)\(shown.isEmpty ? "" : " over snapshot '\(shown)'") at \(point)")
        }
    }

    /// Attaches the snapshot (if any), holds a lease on it so gc keeps it,
    /// and serves until unmounted.
    private func serve(_ point: String, _ upperDir: String, _ fuseOptions: [String],
                       ready: (SnapshotLayer?) -> Void) throws {
        var snapshot: SnapshotLayer?
        var lease: Lease?
        var opened: (any Store)?
        defer { opened?.close() }
        if !from.isEmpty || SnapshotLayer.recorded(in: upperDir) != nil {
            let store = try storeOptions.open()
            opened = store
            let ref = from.isEmpty ? nil : try SnapshotLookup.find(from, in: store)
            snapshot = try SnapshotLayer.attach(upper: upperDir, store: store, ref: ref)
            if let local = store as? LocalStore, let snapshot { lease = try local.lease(root: snapshot.root, holder: point) }
            if let ref { try? store.touchRef(key: ref.key) }
        }
        defer { lease?.release() }
        // Unmounted by `buildfs umount`, plain umount or fusermount3 -u: the
        // record goes with the daemon (umount has read it already).
        defer { MountRegistry.remove(point) }
        try MountDaemon.serve(mountpoint: point, upper: upperDir, options: fuseOptions, snapshot: snapshot) {
            try? MountRegistry.write(MountRecord(pid: getpid(), mountpoint: point, upper: upperDir,
                                                 log: MountRegistry.logPath(for: point),
                                                 started: Date().timeIntervalSince1970,
                                                 store: snapshot == nil ? nil : storeOptions.location))
            ready(snapshot)
        }
    }

    /// Starts this program again as the daemon and waits until it reports
    /// the mount ready, or why it failed.
    /// Returns the key of the snapshot under the mount ("" for none).
    private func startDaemon(_ point: String, _ upperDir: String, _ fuseOptions: [String]) throws -> String {
        let log = MountRegistry.logPath(for: point)
        try makeDirectories(MountRegistry.directory, mode: 0o700)
        guard FileManager.default.createFile(atPath: log, contents: nil),
              let logHandle = FileHandle(forWritingAtPath: log) else {
            throw SystemCallError("create log", log)
        }
        let notify = Pipe()
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        daemon.arguments = ["mount", point, "--upper", upperDir, "--foreground"]
            + (fuseOptions.isEmpty ? [] : ["-o", fuseOptions.joined(separator: ",")])
            + from.flatMap { ["--from", $0] } + storeOptions.arguments
        daemon.environment = ProcessInfo.processInfo.environment.merging([MountCommand.notifyVariable: "1"]) { $1 }
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = notify
        daemon.standardError = logHandle
        daemon.currentDirectoryURL = URL(fileURLWithPath: "/")
        try daemon.run()
        let message = String(decoding: notify.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if message.hasPrefix("READY") { return String(message.dropFirst(6)).trimmingCharacters(in: .newlines) }
        if message.hasPrefix("ERROR ") {
            throw BuildFSError.usage(String(message.dropFirst(6)).trimmingCharacters(in: .newlines))
        }
        throw BuildFSError.usage("the mount daemon exited before the mount was ready; see \(log)")
    }

    /// The daemon side: detach from the terminal's session, serve, and say
    /// READY (then let go of the pipe so the starter returns) or ERROR.
    private func runDaemon(_ point: String, _ upperDir: String, _ fuseOptions: [String]) -> Never {
        setsid()
        func say(_ text: String) {
            var bytes = Array((text + "\n").utf8)
            _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
        }
        do {
            try serve(point, upperDir, fuseOptions) { snapshot in
                say("READY " + (snapshot?.key ?? ""))
                let null = open("/dev/null", O_WRONLY)
                dup2(null, 1)
                close(null)
            }
            Glibc.exit(0)
        } catch {
            say("ERROR \(error)")
            Glibc.exit(1)
        }
    }
}

struct UmountCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "umount",
        abstract: "Unmount a buildfs mount; everything written before it returns is on disk.",
        discussion: """
            Waits for the daemon to finish and flushes the upper directory. Also clears
            a mount whose daemon died ("Transport endpoint is not connected").

            Example:
              buildfs umount /work
            """)

    @Argument(help: ArgumentHelp("The mount point.", valueName: "mountpoint"))
    var mountpoint: String

    func execute() throws {
        try Unmounter.unmount(mountpoint)
    }
}
