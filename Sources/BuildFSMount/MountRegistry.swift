import BuildFSCore
import Foundation
import Glibc

/// What a running daemon leaves for `umount` (and later `stats`) to find
/// it by its mount point: one JSON file per mount in the runtime directory
/// ($XDG_RUNTIME_DIR/buildfs, else /run/buildfs as root, else
/// /tmp/buildfs-UID).
public struct MountRecord: Codable, Sendable {
    public init(pid: Int32, mountpoint: String, upper: String, log: String, started: Double, store: String? = nil) {
        self.store = store
        self.pid = pid
        self.mountpoint = mountpoint
        self.upper = upper
        self.log = log
        self.started = started
    }

    public var pid: Int32
    public var mountpoint: String
    public var upper: String
    public var log: String
    public var started: Double
    /// The store of the snapshot under the mount, if it has one.
    public var store: String?
}

public enum MountRegistry {
    public static var directory: String {
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/buildfs"
        }
        return geteuid() == 0 ? "/run/buildfs" : "/tmp/buildfs-\(geteuid())"
    }

    /// Records are per mount namespace and mount point: runs in separate
    /// namespaces (containers sharing /run, `unshare -m`) may mount at the
    /// same stable path at once.
    static func baseName(_ mountpoint: String) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/ns/mnt", &buffer, buffer.count - 1)
        let namespace = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .filter(\.isNumber) : "0"
        return directory + "/" + namespace + "-" + SafeFileName.escape(mountpoint)
    }

    static func path(for mountpoint: String) -> String { baseName(mountpoint) + ".json" }

    /// Where the daemon of `mountpoint` logs.
    public static func logPath(for mountpoint: String) -> String { baseName(mountpoint) + ".log" }

    public static func write(_ record: MountRecord) throws {
        try makeDirectories(directory, mode: 0o700)
        try replaceFile(path(for: record.mountpoint), with: Array(try JSONEncoder().encode(record)), durable: false)
    }

    public static func read(_ mountpoint: String) -> MountRecord? {
        guard let data = FileManager.default.contents(atPath: path(for: mountpoint)) else { return nil }
        return try? JSONDecoder().decode(MountRecord.self, from: data)
    }

    /// Forgets a mount; its log goes too unless the daemon wrote something
    /// beyond the line naming its transport.
    public static func remove(_ mountpoint: String) {
        for file in [path(for: mountpoint), countersPath(for: mountpoint), committedPath(for: mountpoint),
                     transportPath(for: mountpoint)] { unlink(file) }
        let log = logPath(for: mountpoint)
        if let text = ProcFile.read(log, limit: 1 << 16),
           text.split(separator: "\n").allSatisfy({ $0.hasPrefix(daemonLogPrefix + transportLogMessage("")) }) {
            unlink(log)
        }
    }

    /// The daemon's first line in its log.
    static func transportLogMessage(_ transport: String) -> String { "serving on the \(transport)" }

    /// Where the daemon publishes its counters (MountCounters) for `stats`.
    public static func countersPath(for mountpoint: String) -> String { baseName(mountpoint) + ".counters.json" }

    /// The FUSE transport and features the daemon runs with, for `stats`.
    static func transportPath(for mountpoint: String) -> String { baseName(mountpoint) + ".transport" }

    static func recordTransport(_ transport: String, for mountpoint: String) {
        try? Data((transport + "\n").utf8).write(to: URL(fileURLWithPath: transportPath(for: mountpoint)), options: .atomic)
    }

    public static func transport(for mountpoint: String) -> String? {
        (try? String(contentsOfFile: transportPath(for: mountpoint), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func committedPath(for mountpoint: String) -> String { baseName(mountpoint) + ".committed" }

    /// Bytes commits of this mount added to the store, so far.
    public static func committed(for mountpoint: String) -> UInt64 {
        (try? String(contentsOfFile: committedPath(for: mountpoint), encoding: .utf8))
            .flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
    }

    public static func addCommitted(_ bytes: UInt64, for mountpoint: String) {
        let total = committed(for: mountpoint) + bytes
        try? "\(total)\n".write(toFile: committedPath(for: mountpoint), atomically: true, encoding: .utf8)
    }

    public static func counters(for mountpoint: String) -> [String: UInt64] {
        guard let data = FileManager.default.contents(atPath: countersPath(for: mountpoint)) else { return [:] }
        return (try? JSONDecoder().decode([String: UInt64].self, from: data)) ?? [:]
    }
}
