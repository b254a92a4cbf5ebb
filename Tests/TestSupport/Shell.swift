import Foundation

/// A finished command: exit status and both outputs.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public var succeeded: Bool { status == 0 }

    /// Everything a failure message needs.
    public var summary: String { "exit \(status), stdout: \(stdout.suffix(2000)), stderr: \(stderr.suffix(2000))" }
}

/// Runs programs the way a user would: a separate process (see Child), its
/// exit status and both outputs captured.
public enum Shell {
    /// Runs `arguments[0]` (a path, or a name looked up in PATH) and waits;
    /// `environment` is added to this process's.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String]? = nil,
                           directory: String? = nil, timeout: Int = 600) throws -> CommandResult {
        runCommand(arguments, timeout: timeout,
                   environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } },
                   directory: directory)
    }

    /// Runs a shell snippet with bash.
    @discardableResult
    public static func bash(_ script: String, directory: String? = nil) throws -> CommandResult {
        try run(["/bin/bash", "-c", script], directory: directory)
    }

    /// The buildfs binary built next to this test bundle.
    public static var buildfs: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = (exe as NSString).deletingLastPathComponent
        // On Linux the test runner is .build/<config>/<pkg>PackageTests.xctest.
        while !dir.isEmpty && dir != "/" {
            let candidate = dir + "/buildfs"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        fatalError("buildfs binary not found next to \(exe); run `swift build` first")
    }
}
