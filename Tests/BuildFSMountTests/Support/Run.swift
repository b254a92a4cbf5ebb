import Foundation
import TestSupport

/// The mount tests' way of running commands: TestSupport's runCommand (see
/// Child for why not Foundation's Process), with a short default timeout
/// and `environment` added to this process's.
enum Run {
    @discardableResult
    static func command(_ arguments: [String], timeout seconds: Int = 60,
                        environment: [String: String]? = nil, directory: String? = nil) -> RunResult {
        runCommand(arguments, timeout: seconds,
                   environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } },
                   directory: directory)
    }

    /// A `bash -c` snippet, with the same timeout.
    @discardableResult
    static func bash(_ script: String, timeout seconds: Int = 60, directory: String? = nil) -> RunResult {
        command(["/bin/bash", "-c", script], timeout: seconds, directory: directory)
    }
}

typealias RunResult = CommandResult
