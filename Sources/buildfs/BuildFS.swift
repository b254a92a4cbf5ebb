import ArgumentParser
import BuildFSCore
import Foundation

@main
struct BuildFS: ParsableCommand {
    /// Accepts mount.fuse3's calling form too (see MountHelperSyntax).
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let names = Set(configuration.subcommands.map { $0._commandName })
        do {
            if let translated = try MountHelperSyntax.translate(arguments, subcommands: names) {
                main(translated)
                return
            }
        } catch {
            FileHandle.standardError.write(Data("buildfs: error: \(error)\n".utf8))
            Foundation.exit(1)
        }
        main(arguments)
    }

    static let configuration = CommandConfiguration(
        commandName: "buildfs",
        abstract: "Snapshots of CI build directories in a deduplicated, compressed store.",
        discussion: """
            Keeps build directories in a content-addressed store of zstd-compressed
            chunks, so identical content is stored once and a directory can be saved and
            brought back cheaply. The store is ~/.cache/buildfs unless --store or
            $BUILDFS_STORE says otherwise.

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
