import ArgumentParser
import BuildFSCore
import BuildFSMount
import Foundation
import Glibc

struct CommitCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Save what a mount shows now as a new snapshot.",
        discussion: """
            Costs time in proportion to what changed since the snapshot the mount was
            made from: files never written are taken from that snapshot without being
            read, directories never opened keep their ids, and a second commit of the
            same mount reads only what changed since the first. The mount stays usable.
            Commit when the build is done: files written during the commit may be saved
            half-written.

            Example:
              buildfs commit /work --key linux-gcc-$COMMIT
            """)

    @Argument(help: ArgumentHelp("The mount point of a buildfs mount.", valueName: "mountpoint"))
    var mountpoint: String

    @Option(help: ArgumentHelp("The key to store the snapshot under.", valueName: "key"))
    var key: String

    @Option(help: ArgumentHelp("zstd level for new chunks (1-19).", valueName: "n"))
    var level: Int32 = Zstd.defaultLevel

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        try validateCompressionLevel(level)
    }

    func execute() throws {
        let start = ContinuousClock.now
        let point = MountPreflight.resolvedPath(mountpoint)
        guard MountPreflight.mountEntries().contains(where: { $0.mountpoint == point && $0.type == "fuse.buildfs" }),
              let record = MountRegistry.read(point) else {
            throw BuildFSError.badTarget(path: mountpoint, reason: "is not a buildfs mount; mount it with `buildfs mount` first")
        }
        guard record.daemonIsRunning else {
            throw BuildFSError.badTarget(path: mountpoint, reason: "its daemon is gone (log: \(record.log)); "
                + "run `buildfs umount \(mountpoint)` and mount again")
        }
        let location = storeOptions.store ?? record.store ?? storeOptions.location
        let store = try storeOptions.open(location: location, compressionLevel: level)
        defer { store.close() }
        let summary = try Importer(store: store).importDirectory(record.upper, key: key, upperOfMount: true)
        MountRegistry.addCommitted(summary.ref.addedBytes, for: point)
        let ref = summary.ref
        print("committed \(point) as '\(ref.key)': \(ref.files) files, \(ByteCount.human(ref.logicalBytes)); "
              + "read \(summary.filesRead) files (\(ByteCount.human(summary.bytesRead))), "
              + "\(summary.filesReused) taken as they were; "
              + "\(ByteCount.human(ref.addedBytes)) added to the store in \(Console.seconds(since: start))")
        Console.transfers(store)
    }
}
