import BuildFSCore
import Foundation

/// Where a remote store is: `http[s]://[USER:PASSWORD@]HOST[:PORT][/PATH]`,
/// taken apart into the base URL requests go to and the credentials that
/// travel in a header (never in a URL that an error message could print).
public struct RemoteEndpoint: Sendable, Equatable {
    /// `scheme://host[:port][/path]`, no trailing slash, no user info.
    public let base: String
    public let isTLS: Bool
    /// The host as written (no brackets): a name, or an address literal.
    public let host: String
    /// From the URL's user info, percent-decoded.
    public let user: String?
    public let password: String?

    /// True when `location` names a remote store rather than a directory.
    public static func isRemote(_ location: String) -> Bool {
        location.hasPrefix("http://") || location.hasPrefix("https://")
    }

    public init(_ location: String) throws {
        guard let parts = URLComponents(string: location),
              let scheme = parts.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = parts.host, !host.isEmpty else {
            throw BuildFSError.usage("--store \(RemoteEndpoint.redacted(location)): not a valid http:// or https:// URL")
        }
        guard parts.query == nil, parts.fragment == nil else {
            throw BuildFSError.usage("--store \(RemoteEndpoint.redacted(location)): a store URL takes no ?query or #fragment")
        }
        isTLS = scheme == "https"
        self.host = host
        user = parts.user
        password = parts.password
        var path = parts.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        base = "\(scheme)://\(hostPart)\(parts.port.map { ":\($0)" } ?? "")\(path)"
    }

    /// The URL of a content-addressed object (`cas/`) or an action-cache
    /// entry (`ac/`), both named by a SHA-256 in hex.
    func url(_ space: Space, _ id: ObjectID) -> String { "\(base)/\(space.rawValue)/\(id.hex)" }

    enum Space: String { case cas, ac }

    /// `location` with any password replaced, for messages.
    static func redacted(_ location: String) -> String {
        guard let at = location.firstIndex(of: "@"), let schemeEnd = location.range(of: "://"),
              schemeEnd.upperBound < at else { return location }
        return String(location[..<schemeEnd.upperBound]) + "***" + String(location[at...])
    }
}
