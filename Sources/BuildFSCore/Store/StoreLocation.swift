import Foundation

/// Which store a command uses: `--store`, else `$BUILDFS_STORE`, else
/// `$XDG_CACHE_HOME/buildfs`, else `~/.cache/buildfs`.
public enum StoreLocation {
    /// Relative directories are made absolute: a mount's daemon runs in /.
    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit, !explicit.isEmpty { return absolute(explicit) }
        if let fromEnv = environment["BUILDFS_STORE"], !fromEnv.isEmpty { return absolute(fromEnv) }
        if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/buildfs" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/buildfs"
    }

    static func absolute(_ location: String) -> String {
        if location.hasPrefix("/") || location.contains("://") { return location }
        return FileManager.default.currentDirectoryPath + "/" + location
    }

    /// Opens the local store at `location` (remote stores are opened by
    /// the command line, which links the HTTP client).
    public static func open(_ location: String, compressionLevel: Int32 = Zstd.defaultLevel) throws -> any Store {
        try LocalStore(path: location, compressionLevel: compressionLevel)
    }
}
