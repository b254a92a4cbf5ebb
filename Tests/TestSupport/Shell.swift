import Foundation

/// Runs programs the way a user would: a separate process, its exit status
/// and both outputs captured.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum Shell {
    /// Runs `arguments[0]` (a path, or a name looked up in PATH) and waits.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String]? = nil,
                           directory: String? = nil) throws -> CommandResult {
        let process = Process()
        if arguments[0].hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
        }
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes while the process runs, or a full pipe blocks it.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
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
