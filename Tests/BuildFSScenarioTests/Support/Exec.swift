import Foundation
import Glibc
import TestSupport

/// A finished command: exit status and both outputs.
struct Outcome: Sendable {
    var command: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 }

    /// Everything a failure message needs.
    var summary: String {
        "`\(command.joined(separator: " "))`: exit \(status)\n"
            + "stdout: \(stdout.suffix(3000))\nstderr: \(stderr.suffix(3000))"
    }
}

/// Runs programs with an explicit environment under `timeout` (TestSupport's
/// runCommand: see Child for why not Foundation's Process).
enum Exec {
    static func run(_ arguments: [String], environment: [String: String],
                    directory: String? = nil, timeout seconds: Int) -> Outcome {
        let result = runCommand(arguments, timeout: seconds, environment: environment, directory: directory)
        return Outcome(command: arguments, status: result.status, stdout: result.stdout, stderr: result.stderr)
    }
}

/// The environment of this test process without anything that would change
/// what the scenarios measure (a CCACHE_BASEDIR would hide the very path
/// dependence the stable mount path is there to solve; CARGO_TARGET_DIR
/// would move target/ off the mount), plus `extra`.
func scenarioEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    let inherited = ProcessInfo.processInfo.environment.filter { name, _ in
        !name.hasPrefix("CCACHE_") && !name.hasPrefix("CARGO_") && name != "RUSTFLAGS"
    }
    return inherited.merging(extra) { $1 }
}

/// Where a build step runs: inside a container run, or on the host (the
/// controls without buildfs).
protocol StepRunner {
    func run(_ arguments: [String], environment: [String: String], directory: String, timeout: Int) -> Outcome
}

extension ScenarioRun: StepRunner {}

/// Steps run directly in the test's own namespace.
struct HostRunner: StepRunner {
    func run(_ arguments: [String], environment: [String: String], directory: String, timeout: Int) -> Outcome {
        Exec.run(arguments, environment: environment, directory: directory, timeout: timeout)
    }
}
