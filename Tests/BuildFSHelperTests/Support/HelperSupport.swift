import Foundation
import Glibc
import TestSupport

/// Where the repository's files are, found from this source file's path.
enum Repo {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        // .../Tests/BuildFSHelperTests/Support/HelperSupport.swift -> repository root
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()
    static var helpers: String { root + "/mount-helpers" }
}

/// A finished command: exit status and both outputs.
struct Outcome: CustomStringConvertible {
    var command: String
    var status: Int32
    var stdout: String
    var stderr: String
    var succeeded: Bool { status == 0 }
    var description: String {
        "`\(command)`: exit \(status)\nstdout: \(stdout.suffix(4000))\nstderr: \(stderr.suffix(4000))"
    }
}

/// Runs a program under `timeout` (TestSupport's runCommand: see Child).
/// `environment` is the whole environment (nil: this process's).
func run(_ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
         timeout seconds: Int = 300) -> Outcome {
    let result = runCommand(arguments, timeout: seconds, environment: environment, directory: directory)
    return Outcome(command: arguments.joined(separator: " "), status: result.status, stdout: result.stdout, stderr: result.stderr)
}

/// This process's environment without anything that would change what ccache
/// measures, plus `extra`.
func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    ProcessInfo.processInfo.environment
        .filter { name, _ in !name.hasPrefix("CCACHE_") && !name.hasPrefix("BUILDFS_") && name != "CC" }
        .merging(extra) { $1 }
}


/// The keys `buildfs snapshots --json` lists.
func snapshotKeys(store: String) -> [String] {
    let outcome = run([Shell.buildfs, "snapshots", "--json", "--store", store], timeout: 60)
    guard outcome.succeeded,
          let list = try? JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]]
    else { return [] }
    return list.compactMap { $0["key"] as? String }.sorted()
}

/// Processes whose command line mentions `text` (a daemon left behind).
func processes(mentioning text: String) -> [String] {
    let me = getpid()
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let pid = Int32(entry), pid != me,
              let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty
        else { return nil }
        let line = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
        return line.contains(text) && !line.contains("timeout -k") ? "\(pid): \(line)" : nil
    }
}

/// Whether `path` is a mount point in this namespace (/proc/mounts writes a
/// space in a path as \040, a tab as \011, a newline as \012, a backslash as \134).
func isMountPoint(_ path: String) -> Bool {
    let escaped = path.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
        .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
    return (readText("/proc/self/mounts") ?? "").split(separator: "\n").contains {
        $0.split(separator: " ").dropFirst().first.map(String.init) == escaped
    }
}

func readText(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

func makeDirectory(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

/// The installed binary mount(8) runs: mount-helpers/install.sh, run once per
/// test process with the binary built next to the tests, so that every test
/// that goes through mount(8) or the systemd unit uses this build.
enum Installation {
    static let outcome: Outcome = run([Repo.helpers + "/install.sh", Shell.buildfs], timeout: 60)
    static let binary = "/usr/local/bin/buildfs"
}
