import ArgumentParser
import BuildFSCore
import Foundation

/// A subcommand whose failures end in one `buildfs: error: ...` line on
/// stderr and exit status 1.
protocol BuildFSCommand: ParsableCommand {
    func execute() throws
}

extension BuildFSCommand {
    func run() throws {
        do {
            try execute()
        } catch let error as BuildFSError {
            Console.error(error.description)
            throw ExitCode(1)
        }
    }
}

/// Options every command that touches a store takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The store: a directory (created on first use).",
        discussion: "Default: $BUILDFS_STORE, else $XDG_CACHE_HOME/buildfs, else ~/.cache/buildfs.",
        valueName: "path"))
    var store: String?

    var location: String { StoreLocation.resolve(explicit: store) }

    func open(compressionLevel: Int32 = Zstd.defaultLevel) throws -> any Store {
        try StoreLocation.open(location, compressionLevel: compressionLevel)
    }

    /// For commands that only a local store supports.
    func openLocal(for command: String) throws -> LocalStore {
        guard let local = try open() as? LocalStore else {
            throw BuildFSError.usage("`buildfs \(command)` works on a local store only")
        }
        return local
    }
}

enum Console {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("buildfs: error: \(message)\n".utf8))
    }

    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("buildfs: warning: \(message)\n".utf8))
    }

    static func seconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        let value = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return String(format: "%.2f s", value)
    }
}
