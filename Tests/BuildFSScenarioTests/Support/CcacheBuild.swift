import Foundation
import TestSupport

/// Builds a CProject checkout with `make -j2 CC="ccache cc"`, the cache in
/// `cacheDirectory` and CCACHE_BASEDIR unset, so that ccache keys on
/// absolute paths exactly as it does out of the box.
struct CcacheBuild {
    let cacheDirectory: String

    var environment: [String: String] { scenarioEnvironment(["CCACHE_DIR": cacheDirectory]) }

    /// Copies the checkout to `project` (replacing whatever is there: a
    /// fresh clone, so the build starts from nothing), zeroes the cache's
    /// statistics, builds, and returns the statistics of this build alone.
    func cleanBuild(of checkout: String, at project: String, on runner: some StepRunner) throws -> CcacheStats {
        for step in [["rm", "-rf", project], ["cp", "-R", checkout, project], ["ccache", "-z"]] {
            let outcome = runner.run(step, environment: environment, directory: "/", timeout: 60)
            guard outcome.succeeded else { throw ContainerRunFailure(description: outcome.summary) }
        }
        // -g: the debug info holds the compile directory, so ccache hashes
        // the working directory into every key (hash_dir, on by default).
        let make = runner.run(["make", "-C", project, "-j2", "CC=ccache cc", "CFLAGS=-O2 -g"],
                              environment: environment, directory: "/", timeout: 600)
        guard make.succeeded else { throw ContainerRunFailure(description: "build failed: \(make.summary)") }
        let stats = runner.run(["ccache", "--print-stats"], environment: environment, directory: "/", timeout: 60)
        guard stats.succeeded else { throw ContainerRunFailure(description: stats.summary) }
        return CcacheStats(stats.stdout)
    }

    /// What the built program prints.
    func programOutput(_ project: String, on runner: some StepRunner) -> Outcome {
        runner.run([project + "/build/program"], environment: environment, directory: "/", timeout: 60)
    }
}
