import Foundation
import Testing
import TestSupport

/// Credentials for a remote store: basic auth in the URL, or a header from
/// the environment; refused over plain http unless asked for; a server
/// that refuses us says which options to use.
@Suite struct RemoteAuthTests {
    let dir = TemporaryDirectory("buildfs-remote-auth")
    let server: NginxServer

    init() throws {
        server = try NginxServer(credentials: ("ci", "s3cret"))
        var tree = RandomTree(seed: 51)
        tree.totalBudget = 1 << 20
        tree.generate(at: dir.sub("source"))
    }

    func buildfs(_ arguments: [String], url: String, environment: [String: String]? = nil) throws -> CommandResult {
        try Shell.run([Shell.buildfs] + arguments + ["--store", url, "--cache-dir", dir.sub("cache")],
                      environment: environment)
    }

    func withUser(_ user: String, _ password: String) -> String {
        server.url.replacingOccurrences(of: "http://", with: "http://\(user):\(password)@")
    }

    @Test func withoutCredentialsTheErrorNamesTheAuthOptions() throws {
        let result = try buildfs(["import", dir.sub("source"), "--key", "k"], url: server.url)
        #expect(result.status == 1)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("HTTP 401") && result.stderr.contains("USER:PASSWORD@")
                && result.stderr.contains("BUILDFS_REMOTE_HEADER"), "\(result.stderr)")
    }

    @Test func basicAuthOverPlainHTTPNeedsAllowInsecure() throws {
        let url = withUser("ci", "s3cret")
        let refused = try buildfs(["import", dir.sub("source"), "--key", "k"], url: url)
        #expect(refused.status == 1 && refused.stderr.contains("--allow-insecure"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("s3cret"))
        #expect(server.requests().isEmpty, "nothing was sent")

        let imported = try buildfs(["import", dir.sub("source"), "--key", "k", "--allow-insecure"], url: url)
        #expect(imported.status == 0, "\(imported.stderr)")
        let wrong = try buildfs(["export", dir.sub("out"), "--from", "k", "--allow-insecure"], url: withUser("ci", "nope"))
        #expect(wrong.status == 1 && wrong.stderr.contains("HTTP 401"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("nope"))
    }

    @Test func aHeaderFromTheEnvironmentAuthenticates() throws {
        let token = Data("ci:s3cret".utf8).base64EncodedString()
        let environment = ["BUILDFS_REMOTE_HEADER": "Authorization: Basic \(token)"]
        let imported = try buildfs(["import", dir.sub("source"), "--key", "k", "--allow-insecure"],
                                   url: server.url, environment: environment)
        #expect(imported.status == 0, "\(imported.stderr)")
        let exported = try buildfs(["export", dir.sub("out"), "--from", "k", "--allow-insecure"],
                                   url: server.url, environment: environment)
        #expect(exported.status == 0, "\(exported.stderr)")
        let differences = TreeListing(of: dir.sub("out")).differences(from: TreeListing(of: dir.sub("source")))
        #expect(differences.isEmpty, "\(differences.prefix(5))")

        let malformed = try buildfs(["snapshots", "--allow-insecure"], url: server.url,
                                    environment: ["BUILDFS_REMOTE_HEADER": "no colon here"])
        #expect(malformed.status == 1 && malformed.stderr.contains("'Name: value'"), "\(malformed.stderr)")
    }
}
