import BuildFSCore
import Foundation

/// How to talk to a remote store, from the command line and environment.
public struct RemoteOptions: Sendable {
    /// The local store that caches what was fetched (and records what the
    /// server is known to have).
    public var cacheDirectory: String
    /// Allows credentials over plain http.
    public var allowInsecure: Bool
    /// Never write to the server (jobs that must not poison a shared cache).
    public var readOnly: Bool
    /// One extra header on every request, from `$BUILDFS_REMOTE_HEADER`
    /// ("Name: value"), e.g. a bearer token.
    public var extraHeader: (name: String, value: String)?
    /// PEM file of the certificate authorities to trust for https instead
    /// of the system's (a company's private CA), from `$BUILDFS_REMOTE_CA_FILE`.
    public var caFile: String?
    /// Waits between attempts of a request that failed in a way worth
    /// retrying (connection errors, timeouts, 5xx, 429).
    public var retryDelays: [Double]
    /// Longest time one request may take, transfer included.
    public var requestTimeout: Double
    /// Requests in flight at once for uploads and fetches, from
    /// `$BUILDFS_REMOTE_PARALLEL` (default 16).
    public var parallelTransfers: Int
    /// zstd level of the packs a save sends.
    public var compressionLevel: Int32

    public static let headerVariable = "BUILDFS_REMOTE_HEADER"
    public static let caFileVariable = "BUILDFS_REMOTE_CA_FILE"
    public static let parallelVariable = "BUILDFS_REMOTE_PARALLEL"

    /// Parses `$BUILDFS_REMOTE_PARALLEL`; nil when unset or empty.
    public static func parallelTransfers(from environment: [String: String]) throws -> Int? {
        guard let text = environment[parallelVariable], !text.isEmpty else { return nil }
        guard let value = Int(text), (1...256).contains(value) else {
            throw BuildFSError.usage("\(parallelVariable) must be a number of requests from 1 to 256, not '\(text)'")
        }
        return value
    }

    public init(cacheDirectory: String, allowInsecure: Bool = false, readOnly: Bool = false,
                extraHeader: (name: String, value: String)? = nil, caFile: String? = nil,
                retryDelays: [Double] = [0.25, 0.5, 1, 2], requestTimeout: Double = 120,
                parallelTransfers: Int = 16, compressionLevel: Int32 = Zstd.defaultLevel) {
        self.cacheDirectory = cacheDirectory
        self.allowInsecure = allowInsecure
        self.readOnly = readOnly
        self.extraHeader = extraHeader
        self.caFile = caFile
        self.retryDelays = retryDelays
        self.requestTimeout = requestTimeout
        self.parallelTransfers = parallelTransfers
        self.compressionLevel = compressionLevel
    }

    /// Parses `$BUILDFS_REMOTE_HEADER`; nil when unset or empty.
    public static func header(from environment: [String: String]) throws -> (name: String, value: String)? {
        guard let text = environment[headerVariable], !text.isEmpty else { return nil }
        guard let colon = text.firstIndex(of: ":") else {
            throw BuildFSError.usage("\(headerVariable) must look like 'Name: value' (e.g. 'Authorization: Bearer TOKEN')")
        }
        let name = text[..<colon].trimmingCharacters(in: .whitespaces)
        let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        let token = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_"))
        guard !name.isEmpty, name.unicodeScalars.allSatisfy(token.contains),
              !value.contains("\r"), !value.contains("\n") else {
            throw BuildFSError.usage("\(headerVariable) must look like 'Name: value' (e.g. 'Authorization: Bearer TOKEN')")
        }
        return (name, value)
    }

    /// The default cache for a remote store: one local store per server URL
    /// under `$XDG_CACHE_HOME/buildfs-remote` (else `~/.cache/buildfs-remote`).
    public static func defaultCacheDirectory(for endpoint: RemoteEndpoint,
                                             environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let cacheHome = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.cache"
        return cacheHome + "/buildfs-remote/" + SafeFileName.escape(endpoint.base)
    }
}
