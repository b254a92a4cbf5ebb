import Foundation
import Testing
import TestSupport

/// https to a server whose certificate comes from a private CA, the way a
/// company's cache usually is: trusted through BUILDFS_REMOTE_CA_FILE, and a
/// clear refusal without it.
@Suite struct RemoteTLSTests {
    let dir = TemporaryDirectory("buildfs-remote-tls")
    let server: NginxServer

    init() throws {
        server = try NginxServer(credentials: ("ci", "s3cret"), tls: true)
        var tree = RandomTree(seed: 61)
        tree.totalBudget = 2 << 20
        tree.generate(at: dir.sub("source"))
    }

    func buildfs(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        let url = server.url.replacingOccurrences(of: "https://", with: "https://ci:s3cret@")
        return try Shell.run([Shell.buildfs] + arguments + ["--store", url, "--cache-dir", dir.sub("cache")],
                             environment: environment)
    }

    @Test func basicAuthOverHTTPSWithAPrivateCARoundTrips() throws {
        let trust = ["BUILDFS_REMOTE_CA_FILE": server.caFile]
        let imported = try buildfs(["import", dir.sub("source"), "--key", "tls-1"], environment: trust)
        #expect(imported.status == 0, "\(imported.stderr)")
        let exported = try buildfs(["export", dir.sub("out"), "--from", "tls-"], environment: trust)
        #expect(exported.status == 0, "\(exported.stderr)")
        let differences = TreeListing(of: dir.sub("out")).differences(from: TreeListing(of: dir.sub("source")))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
        #expect(server.count("PUT", "cas") > 0)
    }

    @Test func anUntrustedCertificateIsOneClearLine() throws {
        let result = try buildfs(["snapshots"])
        expectOneLineError(result, containing: "BUILDFS_REMOTE_CA_FILE")
        #expect(result.stderr.contains("TLS failed"), "\(result.stderr)")
        #expect(server.count("GET", "ac") == 0, "no request got through")
    }
}
