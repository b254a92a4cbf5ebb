import ArgumentParser

@main
struct BuildFS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "buildfs",
        abstract: "Snapshots of CI build directories in a deduplicated, compressed store.",
        discussion: """
            Keeps build directories in a content-addressed store of zstd-compressed chunks, so
            identical content is stored once and a directory can be saved and brought back cheaply.
            The store is ~/.cache/buildfs unless --store or $BUILDFS_STORE says otherwise.

            Example:
              buildfs import build/ --key linux-gcc-$COMMIT
              buildfs export build/ --from linux-gcc-$COMMIT --from linux-gcc-
              buildfs snapshots
            """,
        version: "0.1.0",
        subcommands: [MountCommand.self, UmountCommand.self, CommitCommand.self, StatsCommand.self, ImportCommand.self, ExportCommand.self, SnapshotsCommand.self,
                      GCCommand.self, FsckCommand.self]
    )
}
