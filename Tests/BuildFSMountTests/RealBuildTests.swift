import Foundation
import Glibc
import Testing
import TestSupport

/// Real tools on the mount: make -j2 with ccache keeping its cache on the
/// mount (what the cibuildwheel recipe does), and gold, whose output file is
/// written through a shared mmap.
@Suite("Real builds on the mount") struct RealBuildTests {
    let fixture: MountFixture
    init() throws { fixture = try MountFixture(timeLimit: 400) }

    /// `ccache --print-stats` as numbers.
    func ccacheStats(_ environment: [String: String]) -> [String: Int] {
        let result = Run.command(["ccache", "--print-stats"], timeout: 60, environment: environment)
        var stats: [String: Int] = [:]
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == 2, let value = Int(fields[1]) { stats[String(fields[0])] = value }
        }
        return stats
    }

    @Test func makeWithCcacheOnTheMountHitsEverythingTheSecondTime() throws {
        let modules = 12, compiles = 13  // the modules and main.c
        // The reference: the same project built on a plain directory.
        let reference = fixture.plain + "/project"
        try CProject.write(to: reference, modules: modules)
        let plainBuild = Run.command(["make", "-C", reference, "-j2"], timeout: 300)
        try #require(plainBuild.status == 0, "\(plainBuild.summary)")
        let expectedOutput = Run.command([reference + "/build/program"]).stdout

        let project = fixture.mnt + "/project"
        try CProject.write(to: project, modules: modules)
        let environment = ["CC": "ccache cc", "CCACHE_DIR": fixture.mnt + "/ccache", "CCACHE_TEMPDIR": fixture.mnt + "/ccache/tmp"]
        #expect(Run.command(["ccache", "-z"], environment: environment).status == 0)

        let first = Run.command(["make", "-C", project, "-j2"], timeout: 300, environment: environment)
        try #require(first.status == 0, "first build: \(first.summary)")
        let firstStats = ccacheStats(environment)
        #expect(firstStats["cache_miss"] == compiles, "first build: \(firstStats.filter { $0.value != 0 })")
        #expect(Run.command([project + "/build/program"]).stdout == expectedOutput)
        // mtimes on the mount are consistent: nothing left to do.
        let upToDate = Run.command(["make", "-C", project, "-q"], timeout: 60, environment: environment)
        #expect(upToDate.status == 0, "make -q after a build: \(upToDate.summary)")

        // `make clean` (the CProject Makefile has no clean target: it is rm -rf build).
        #expect(Run.command(["rm", "-rf", project + "/build"]).status == 0)
        #expect(Run.command(["ccache", "-z"], environment: environment).status == 0)
        let second = Run.command(["make", "-C", project, "-j2"], timeout: 300, environment: environment)
        try #require(second.status == 0, "second build: \(second.summary)")
        let secondStats = ccacheStats(environment)
        let hits = (secondStats["direct_cache_hit"] ?? 0) + (secondStats["preprocessed_cache_hit"] ?? 0)
        #expect(hits == compiles && secondStats["cache_miss"] == 0,
                "second build must be all hits: \(secondStats.filter { $0.value != 0 })")
        #expect(Run.command([project + "/build/program"]).stdout == expectedOutput)
    }

    /// gold maps its output file MAP_SHARED and writes it through the map;
    /// the program must run and be byte-identical to the same link on a
    /// plain directory.
    @Test func goldLinksThroughMmapAndTheProgramRuns() throws {
        try #require(Run.command(["ld.gold", "--version"]).status == 0, "ld.gold is missing (binutils)")
        // A large initialized table makes the output span many pages.
        var source = "#include <stdio.h>\nstatic const unsigned table[60000] = {"
        source += (0..<60000).map { String(($0 &* 2_654_435_761) % 1_000_003) }.joined(separator: ",")
        source += "};\nint main(void) { unsigned long s = 0; for (int i = 0; i < 60000; i++) s += table[i];"
        source += " printf(\"sum %lu\\n\", s); return 0; }\n"
        var results: [(output: String, binary: [UInt8])] = []
        for root in [fixture.plain, fixture.mnt] {
            try source.write(toFile: root + "/hello.c", atomically: false, encoding: .utf8)
            let link = Run.command(["cc", "-fuse-ld=gold", "-O1", "-o", "hello", "hello.c"], timeout: 120, directory: root)
            try #require(link.status == 0, "gold link in \(root): \(link.summary)")
            let run = Run.command([root + "/hello"], timeout: 30)
            #expect(run.status == 0, "\(run.summary)")
            let binary = FileManager.default.contents(atPath: root + "/hello").map { [UInt8]($0) } ?? []
            results.append((run.stdout, binary))
        }
        #expect(results[0].output.hasPrefix("sum "))
        #expect(results[1].output == results[0].output)
        #expect(results[1].binary.count > 200_000)
        #expect(results[1].binary == results[0].binary, "gold's output on the mount differs from the plain link")
    }
}
