import ArgumentParser
import BuildFSCore

struct ImportCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Snapshot a directory into the store under a key (no FUSE needed).",
        discussion: """
            Only files that changed since the parent snapshot are read: a file is taken
            as unchanged when its path, size, mtime, ctime, inode and mode match. The
            parent is the newest snapshot imported from the same directory, or the one
            --parent names. Importing under an existing key replaces that snapshot.

            Example:
              buildfs import build/ --key linux-gcc-$COMMIT
            """)

    @Argument(help: ArgumentHelp("The directory to snapshot.", valueName: "dir"))
    var directory: String

    @Option(help: ArgumentHelp("The key to store the snapshot under.", valueName: "key"))
    var key: String

    @Option(help: ArgumentHelp(
        "Reuse unchanged files of this snapshot (exact key, else newest with this prefix; repeatable).",
        valueName: "key"))
    var parent: [String] = []

    @Option(help: ArgumentHelp("zstd level for new chunks (1-19).", valueName: "n"))
    var level: Int32 = Zstd.defaultLevel

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        try validateCompressionLevel(level)
    }

    func execute() throws {
        let start = ContinuousClock.now
        let store = try storeOptions.open(compressionLevel: level)
        defer { store.close() }
        let summary = try Importer(store: store).importDirectory(
            directory, key: key, parentCandidates: parent.isEmpty ? nil : parent)
        for path in summary.skipped.prefix(5) {
            Console.warning("skipped \(path): fifos, sockets and device files are not stored")
        }
        if summary.skipped.count > 5 { Console.warning("skipped \(summary.skipped.count - 5) more special files") }
        let ref = summary.ref
        let reuse = summary.parentKey.map { ", \(summary.filesReused) unchanged since '\($0)'" } ?? ""
        print("imported \(directory) as '\(ref.key)': \(ref.files) files, \(ref.directories) dirs, "
              + "\(ByteCount.human(ref.logicalBytes)); read \(summary.filesRead) files"
              + " (\(ByteCount.human(summary.bytesRead)))\(reuse); "
              + "\(ByteCount.human(ref.addedBytes)) added to the store in \(Console.seconds(since: start))")
        Console.transfers(store)
    }
}
