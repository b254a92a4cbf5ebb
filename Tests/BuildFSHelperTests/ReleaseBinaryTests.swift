import Foundation
import Glibc
import Testing
import TestSupport

/// The release binary (`scripts/build-release`) is one self-contained file:
/// no interpreter, no shared library, and it does the whole job — import,
/// export, mount --from, commit, umount, a remote store by host name — from
/// an otherwise empty root directory, as it would in any container image.
@Suite(.serialized) struct ReleaseBinaryTests {
    @Test func hasNoDynamicDependencies() throws {
        let binary = try ReleaseBinary.path()
        let elf = try ELFDynamicInfo(path: binary)
        #expect(elf.interpreter == nil, "PT_INTERP \(elf.interpreter ?? "")")
        #expect(elf.needed.isEmpty, "DT_NEEDED \(elf.needed)")
        let ldd = run(["ldd", binary])
        #expect((ldd.stdout + ldd.stderr).contains("not a dynamic executable"), "\(ldd)")
    }

    @Test func importExportMountCommitAndUmountFromAnEmptyRoot() throws {
        let root = try EmptyRoot()
        #expect(root.buildfs(["--version"]).succeeded)
        var tree = RandomTree(seed: 1313)
        tree.totalBudget = 6 << 20
        tree.generate(at: root.sub("src"))
        let source = TreeListing(of: root.sub("src"))
        #expect(source.entries.count > 10)

        let imported = root.buildfs(["import", "/src", "--key", "job-1", "--store", "/store"])
        try #require(imported.succeeded, "\(imported)")
        let exported = root.buildfs(["export", "/out", "--from", "job-", "--store", "/store"])
        try #require(exported.succeeded, "\(exported)")
        let exportDifferences = TreeListing(of: root.sub("out")).differences(from: source)
        #expect(exportDifferences.isEmpty, "\(exportDifferences.prefix(5))")

        try FileManager.default.createDirectory(atPath: root.sub("work"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root.sub("upper"), withIntermediateDirectories: true)
        let mounted = root.buildfs(["mount", "--store", "/store", "--upper", "/upper", "--from", "job-1", "/work"])
        try #require(mounted.succeeded, "\(mounted)")
        #expect(mountPoints(under: root.path).contains(root.sub("work")))
        // Every byte read through the mount comes from the snapshot (the upper
        // directory is empty).
        let throughMount = TreeListing(of: root.sub("work"))
        #expect(throughMount.differences(from: source).isEmpty, "\(throughMount.differences(from: source).prefix(5))")

        // A job's changes, then a commit of what a reader sees.
        let anyFile = try #require(source.entries.keys.sorted().first { source.entries[$0]?.contains(" file size=") == true })
        let handle = try #require(FileHandle(forWritingAtPath: root.sub("work/\(anyFile)")))
        handle.seekToEndOfFile()
        handle.write(Data("one more line\n".utf8))
        try handle.close()
        try "new in job 1\n".write(toFile: root.sub("work/new-file.txt"), atomically: false, encoding: .utf8)
        let seen = TreeListing(of: root.sub("work"))
        #expect(seen.entries["new-file.txt"] != nil)
        #expect(seen.entries[anyFile] != source.entries[anyFile], "the append shows")

        let committed = root.buildfs(["commit", "/work", "--key", "job-2"])
        try #require(committed.succeeded, "\(committed)")
        let unmounted = root.buildfs(["umount", "/work"])
        #expect(unmounted.succeeded, "\(unmounted)")
        #expect(mountPoints(under: root.path) == [root.sub("proc")], "nothing left mounted")
        #expect(waitUntil(seconds: 5) { root.processes().isEmpty }, "daemon still running: \(root.processes())")

        let exportedCommit = root.buildfs(["export", "/out2", "--from", "job-2", "--store", "/store"])
        try #require(exportedCommit.succeeded, "\(exportedCommit)")
        let commitDifferences = TreeListing(of: root.sub("out2")).differences(from: seen)
        #expect(commitDifferences.isEmpty, "\(commitDifferences.prefix(5))")
    }

    @Test func aRemoteStoreNamedInTheRootsHostsFile() throws {
        let server = try NginxServer()
        let root = try EmptyRoot()
        try FileManager.default.createDirectory(atPath: root.sub("etc"), withIntermediateDirectories: true)
        try "127.0.0.1 cache.buildfs.test\n".write(toFile: root.sub("etc/hosts"), atomically: true, encoding: .utf8)
        try roundTrip(root, store: "http://cache.buildfs.test:\(server.port)/cache", server: server)
    }

    @Test func aRemoteStoreNamedByDNS() throws {
        let server = try NginxServer()
        let dns = try DNSResponder(records: ["store.ci.buildfs.test": ["127.0.0.1"]])
        let root = try EmptyRoot()
        try FileManager.default.createDirectory(atPath: root.sub("etc"), withIntermediateDirectories: true)
        try "search ci.buildfs.test\nnameserver \(dns.address)\noptions timeout:2\n"
            .write(toFile: root.sub("etc/resolv.conf"), atomically: true, encoding: .utf8)
        // The full name first, then the short one through the search list.
        try roundTrip(root, store: "http://store.ci.buildfs.test:\(server.port)/cache", server: server,
                      exportStore: "http://store:\(server.port)/cache")
        // HostResolver asked (glibc's getaddrinfo would ask for AAAA as well).
        #expect(dns.questions.contains("A store.ci.buildfs.test"), "\(dns.questions)")
        #expect(!dns.questions.contains { $0.hasPrefix("AAAA") }, "\(dns.questions)")
    }

    @Test func httpsToAServerWhoseCertificateNamesOnlyItsHostName() throws {
        let server = try NginxServer(tls: true, serverName: "secure.buildfs.test")
        let root = try EmptyRoot()
        try FileManager.default.createDirectory(atPath: root.sub("etc"), withIntermediateDirectories: true)
        try "127.0.0.1 secure.buildfs.test\n".write(toFile: root.sub("etc/hosts"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: server.caFile, toPath: root.sub("ca.pem"))
        let trust = ["BUILDFS_REMOTE_CA_FILE": "/ca.pem"]
        try roundTrip(root, store: "https://secure.buildfs.test:\(server.port)/cache", server: server, environment: trust)
        // By its address the same server fails the certificate check: TLS
        // checked the name, not the address the name was resolved to.
        let start = Date()
        let byAddress = root.buildfs(["snapshots", "--store", "https://127.0.0.1:\(server.port)/cache", "--cache-dir", "/cache-c"],
                                     environment: trust)
        #expect(!byAddress.succeeded && byAddress.stderr.contains("certificate is not for 127.0.0.1"), "\(byAddress)")
        #expect(Date().timeIntervalSince(start) < 10, "not retried")
    }

    /// A static glibc's getaddrinfo loads the NSS modules the image's
    /// /etc/nsswitch.conf names (and with them the image's libc.so.6) into
    /// the process. buildfs resolves names itself and never does.
    @Test func theImagesNSSModulesAreNeverLoaded() throws {
        let server = try NginxServer()
        let root = try EmptyRoot()
        try root.addNSSModuleAnsweringEverything()
        try "127.0.0.1 cache.buildfs.test\n".write(toFile: root.sub("etc/hosts"), atomically: true, encoding: .utf8)
        // The control: a static C program's getaddrinfo in this root takes
        // the module's answer, not /etc/hosts'.
        try """
            #include <netdb.h>
            #include <stdio.h>
            #include <arpa/inet.h>
            int main(int argc, char **argv) {
                struct addrinfo *result;
                if (getaddrinfo(argv[1], 0, 0, &result)) return 1;
                char text[64];
                puts(inet_ntop(AF_INET, &((struct sockaddr_in *)result->ai_addr)->sin_addr, text, sizeof text));
                return 0;
            }

            """.write(toFile: root.sub("lookup.c"), atomically: true, encoding: .utf8)
        let compiled = run(["gcc", "-static", "-o", root.sub("lookup"), root.sub("lookup.c")], timeout: 120)
        try #require(compiled.succeeded, "\(compiled)")
        let control = run(["env", "-i", EmptyRoot.chroot, root.path, "/lookup", "cache.buildfs.test"])
        #expect(control.stdout == "10.99.99.99\n", "\(control)")
        #expect(FileManager.default.fileExists(atPath: root.sub("nss-module-was-loaded")))
        try FileManager.default.removeItem(atPath: root.sub("nss-module-was-loaded"))

        try roundTrip(root, store: "http://cache.buildfs.test:\(server.port)/cache", server: server)
        #expect(!FileManager.default.fileExists(atPath: root.sub("nss-module-was-loaded")))
    }

    /// Import into the remote store, export through a fresh cache (so every
    /// object comes from the server), compare.
    private func roundTrip(_ root: EmptyRoot, store: String, server: NginxServer, exportStore: String? = nil,
                           environment: [String: String] = [:]) throws {
        var tree = RandomTree(seed: 1314)
        tree.totalBudget = 3 << 20
        tree.generate(at: root.sub("src"))
        let imported = root.buildfs(["import", "/src", "--key", "remote-1", "--store", store, "--cache-dir", "/cache-a"],
                                    environment: environment)
        try #require(imported.succeeded, "\(imported)")
        #expect(server.count("PUT", "cas") > 0)
        let exported = root.buildfs(["export", "/out", "--from", "remote-", "--store", exportStore ?? store,
                                    "--cache-dir", "/cache-b"], environment: environment)
        try #require(exported.succeeded, "\(exported)")
        #expect(server.count("GET", "cas") > 0)
        let differences = TreeListing(of: root.sub("out")).differences(from: TreeListing(of: root.sub("src")))
        #expect(differences.isEmpty, "\(differences.prefix(5))")
    }
}

/// A root directory holding only the release binary (/buildfs), /dev/fuse,
/// /dev/null and /proc; commands run in it with chroot and an empty
/// environment. Unmounted and removed when dropped.
final class EmptyRoot {
    let directory = TemporaryDirectory("buildfs-empty-root")
    var path: String { directory.path }

    init() throws {
        let binary = try ReleaseBinary.path()
        for setup in [
            ["cp", binary, sub("buildfs")],
            ["mkdir", "-m", "755", sub("dev"), sub("proc")],
            ["mknod", "-m", "666", sub("dev/fuse"), "c", "10", "229"],
            ["mknod", "-m", "666", sub("dev/null"), "c", "1", "3"],
            ["mount", "-t", "proc", "proc", sub("proc")],
        ] {
            let outcome = run(setup, timeout: 60)
            guard outcome.succeeded else { throw SpawnFailure(description: "\(outcome)") }
        }
        let contents = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        precondition(contents == ["buildfs", "dev", "proc"], "\(contents)")
    }

    func sub(_ name: String) -> String { directory.sub(name) }

    /// chroot(8) by its path: `env -i` leaves no PATH to find it with.
    static let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "chroot"

    /// `/buildfs ARGUMENTS` inside the root, with no environment but `environment`.
    func buildfs(_ arguments: [String], environment: [String: String] = [:], timeout: Int = 300) -> Outcome {
        let variables = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let result = runCommand(["env", "-i"] + variables + [EmptyRoot.chroot, path, "/buildfs"] + arguments, timeout: timeout)
        return Outcome(command: "chroot \(path) /buildfs " + arguments.joined(separator: " "),
                       status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// An image's NSS module, first in /etc/nsswitch.conf: it answers every
    /// host name with 10.99.99.99 and leaves /nss-module-was-loaded. With the
    /// C library it needs, so that a dlopen() of it would succeed.
    func addNSSModuleAnsweringEverything() throws {
        let multiarch = run(["gcc", "-print-multiarch"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let libraries = sub("lib/\(multiarch)")
        try FileManager.default.createDirectory(atPath: libraries, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: sub("etc"), withIntermediateDirectories: true)
        try """
            #include <nss.h>
            #include <netdb.h>
            #include <stdio.h>
            #include <string.h>
            #include <arpa/inet.h>
            enum nss_status _nss_imagemodule_gethostbyname4_r(const char *name, struct gaih_addrtuple **result,
                    char *buffer, size_t length, int *error, int *herror, int *ttl) {
                FILE *mark = fopen("/nss-module-was-loaded", "w");
                if (mark) fclose(mark);
                struct gaih_addrtuple *tuple = (struct gaih_addrtuple *)buffer;
                memset(tuple, 0, sizeof *tuple);
                tuple->family = AF_INET;
                inet_pton(AF_INET, "10.99.99.99", tuple->addr);
                tuple->name = (char *)name;
                *result = tuple;
                return NSS_STATUS_SUCCESS;
            }

            """.write(toFile: sub("module.c"), atomically: true, encoding: .utf8)
        let module = libraries + "/libnss_imagemodule.so.2"
        let compiled = run(["gcc", "-shared", "-fPIC", "-o", module, sub("module.c")], timeout: 120)
        guard compiled.succeeded else { throw SpawnFailure(description: "\(compiled)") }
        // libc.so.6 and the dynamic loader, from what ldd says the module needs.
        for line in run(["ldd", module]).stdout.split(separator: "\n") {
            guard let path = line.split(whereSeparator: \.isWhitespace).map(String.init).first(where: { $0.hasPrefix("/") })
            else { continue }
            // The file, not a symlink (/lib64/ld-linux-x86-64.so.2 is one).
            try FileManager.default.copyItem(atPath: (path as NSString).resolvingSymlinksInPath,
                                             toPath: libraries + "/" + (path as NSString).lastPathComponent)
        }
        try "hosts: imagemodule files dns\n".write(toFile: sub("etc/nsswitch.conf"), atomically: true, encoding: .utf8)
    }

    /// Processes whose root directory is this one (a daemon left behind).
    func processes() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard Int32(entry) != nil,
                  let processRoot = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/root"),
                  processRoot == path else { return nil }
            let command = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline").map {
                String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
            } ?? ""
            return "\(entry): \(command)"
        }
    }

    deinit {
        // TemporaryDirectory unmounts what is left (proc, a failed test's
        // mount); a daemon a failed test left behind goes first.
        for process in processes() {
            if let pid = Int32(process.prefix(while: { $0 != ":" })) { kill(pid, SIGKILL) }
        }
    }
}
