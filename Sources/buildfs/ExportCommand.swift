import ArgumentParser
import BuildFSCore

struct ExportCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a snapshot out as a plain directory (no FUSE needed).",
        discussion: """
            Each --from is tried in order, like a CI cache's key and restore-keys: first
            as an exact key, then as a prefix that picks the newest snapshot whose key
            starts with it. The target must be empty or not exist. mtimes are restored
            to the nanosecond; owners are restored when run as root.

            Example:
              buildfs export build/ --from linux-gcc-$COMMIT --from linux-gcc-
            """)

    @Argument(help: ArgumentHelp("The directory to create (must be empty or absent).", valueName: "dir"))
    var directory: String

    @Option(help: ArgumentHelp("A key or key prefix to restore from (repeatable; first match wins).",
                               valueName: "key"))
    var from: [String] = []

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        if from.isEmpty { throw ValidationError("give at least one --from KEY") }
    }

    func execute() throws {
        let start = ContinuousClock.now
        let store = try storeOptions.open()
        defer { store.close() }
        let ref = try SnapshotLookup.find(from, in: store)
        let summary = try Exporter(store: store).export(ref, to: directory)
        let matched = from.contains(ref.key) ? "" : " (newest match for a prefix)"
        print("exported '\(ref.key)'\(matched) to \(directory): \(summary.files) files, "
              + "\(ByteCount.human(summary.bytes)) in \(Console.seconds(since: start))")
        Console.transfers(store)
    }
}
