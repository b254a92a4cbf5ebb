import ArgumentParser
import BuildFSCore
import BuildFSRemote
import Foundation

/// A subcommand whose failures end in one `buildfs: error: ...` line on
/// stderr and exit status 1.
protocol BuildFSCommand: ParsableCommand {
    func execute() throws
}

extension BuildFSCommand {
    /// `--level` of the commands that compress (import, commit).
    func validateCompressionLevel(_ level: Int32) throws {
        guard Zstd.levels.contains(level) else {
            throw ValidationError("--level must be between \(Zstd.levels.lowerBound) and \(Zstd.levels.upperBound)")
        }
    }

    func run() throws {
        // A remote store's connections close with the command.
        defer { HTTPStore.closeConnections() }
        do {
            try execute()
        } catch let error as any ReportableError {
            Console.error(error.description)
            throw ExitCode(1)
        }
    }
}

/// Options every command that touches a store takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The store: a directory (created on first use), or http[s]://[USER:PASSWORD@]HOST[:PORT]/PATH of a Bazel-style remote cache.",
        discussion: "Default: $BUILDFS_STORE, else $XDG_CACHE_HOME/buildfs, else ~/.cache/buildfs.",
        valueName: "path-or-url"))
    var store: String?

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp(
        "Remote stores: the local cache of fetched objects (default: ~/.cache/buildfs-remote/<server>).",
        valueName: "dir"))
    var cacheDir: String?

    @Flag(help: "Remote stores: allow credentials over plain http.")
    var allowInsecure = false

    @Flag(help: "Remote stores: never write to the server (for untrusted jobs such as pull requests from forks).")
    var readOnly = false

    var location: String { StoreLocation.resolve(explicit: store) }

    /// Opens the store at `location` (default: the one these options name).
    func open(location: String? = nil, compressionLevel: Int32 = Zstd.defaultLevel) throws -> any Store {
        let location = location ?? self.location
        guard RemoteEndpoint.isRemote(location) else {
            return try StoreLocation.open(location, compressionLevel: compressionLevel)
        }
        let endpoint = try RemoteEndpoint(location)
        let environment = ProcessInfo.processInfo.environment
        let options = RemoteOptions(
            cacheDirectory: cacheDir.map { StoreLocation.resolve(explicit: $0) }
                ?? RemoteOptions.defaultCacheDirectory(for: endpoint),
            allowInsecure: allowInsecure, readOnly: readOnly,
            extraHeader: try RemoteOptions.header(from: environment),
            caFile: environment[RemoteOptions.caFileVariable].flatMap { $0.isEmpty ? nil : $0 },
            parallelTransfers: try RemoteOptions.parallelTransfers(from: environment) ?? 16,
            compressionLevel: compressionLevel)
        return try HTTPStore(url: location, options: options)
    }

    /// For commands that only a local store supports; `remoteAdvice` says
    /// what to do instead on a remote one.
    func openLocal(for command: String, remoteAdvice: String) throws -> LocalStore {
        if RemoteEndpoint.isRemote(location) {
            throw BuildFSError.usage("`buildfs \(command)` works on local stores only: \(remoteAdvice)")
        }
        guard let local = try open() as? LocalStore else {
            throw BuildFSError.usage("`buildfs \(command)` works on local stores only")
        }
        return local
    }

    /// These options as arguments, for a daemon started with them.
    var arguments: [String] {
        (store == nil ? [] : ["--store", location]) + (cacheDir.map { ["--cache-dir", StoreLocation.resolve(explicit: $0)] } ?? [])
            + (allowInsecure ? ["--allow-insecure"] : []) + (readOnly ? ["--read-only"] : [])
    }
}

enum Console {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("buildfs: error: \(message)\n".utf8))
    }

    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("buildfs: warning: \(message)\n".utf8))
    }

    /// For a remote store, one line on what went over the network.
    static func transfers(_ store: any Store) {
        if let remote = store as? HTTPStore { print("  \(remote.location): \(remote.transferSummary)") }
    }

    static func seconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        let value = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return String(format: "%.2f s", value)
    }
}
