import Foundation
import Testing
import TestSupport

/// Every shell script in mount-helpers/ passes shellcheck, warnings included.
@Suite("shellcheck") struct ShellcheckTests {
    /// The scripts: every *.sh under mount-helpers/, found rather than listed,
    /// so a new script cannot slip past.
    static var scripts: [String] {
        let enumerator = FileManager.default.enumerator(atPath: Repo.helpers)
        var found: [String] = []
        while let path = enumerator?.nextObject() as? String {
            if path.hasSuffix(".sh") { found.append(Repo.helpers + "/" + path) }
        }
        return found.sorted()
    }

    /// shellcheck, or nil when it is not installed. The test does not
    /// install it: scripts/install-deps does, with everything else.
    static let shellcheck: String? = ["/usr/bin/shellcheck", "/usr/local/bin/shellcheck"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func theHelperScriptsAreAllThere() {
        let names = Self.scripts.map { String($0.dropFirst(Repo.helpers.count + 1)) }
        for expected in ["install.sh", "cibuildwheel/buildfs-before-all.sh", "cibuildwheel/buildfs-after-all.sh",
                         "ci/ci-job.sh"] {
            #expect(names.contains(expected), "missing mount-helpers/\(expected); found \(names)")
        }
        for script in Self.scripts {
            #expect(FileManager.default.isExecutableFile(atPath: script), "\(script) is not executable")
        }
    }

    @Test func everyHelperScriptPassesShellcheck() throws {
        let shellcheck = try #require(Self.shellcheck, "shellcheck is not installed; scripts/install-deps installs it")
        try #require(!Self.scripts.isEmpty)
        for script in Self.scripts {
            let check = run([shellcheck, "--severity=style", "--external-sources", script], timeout: 120)
            #expect(check.succeeded, "shellcheck \(script):\n\(check.stdout)\(check.stderr)")
        }
    }
}
