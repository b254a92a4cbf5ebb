import BuildFSCore
import Foundation
import Glibc
import Synchronization

/// Objects the server was seen to have (uploaded, found by HEAD, or
/// fetched), kept in the cache directory so that a later run does not ask
/// again: an import that reuses unchanged files checks each of their chunks.
///
/// A sighting is trusted for `lifetime` seconds: a remote cache evicts on
/// its own (nginx: a cron job; bazel-remote: a size limit), so the server's
/// eviction must keep objects longer than that (docs/remote-store.md).
///
/// File: records of 32-byte id + 8-byte little-endian seconds since the
/// epoch, appended with O_APPEND in whole records by any process; a torn
/// last record is ignored.
final class KnownObjects: Sendable {
    static let lifetime: Double = 24 * 3600
    private static let recordSize = ObjectID.byteCount + 8

    private let path: String
    private let seen = Mutex<[ObjectID: Double]>([:])
    /// Sightings not yet written to the file.
    private let fresh = Mutex<[ObjectID]>([])

    init(path: String) {
        self.path = path
        let now = Date().timeIntervalSince1970
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var loaded: [ObjectID: Double] = [:]
        let records = data.count / KnownObjects.recordSize
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset + KnownObjects.recordSize <= raw.count {
                let id = ObjectID(digestBytes: UnsafeRawBufferPointer(rebasing: raw[offset..<offset + ObjectID.byteCount]))
                let seconds = Double(raw.loadUnaligned(fromByteOffset: offset + ObjectID.byteCount, as: UInt64.self).littleEndian)
                if now - seconds < KnownObjects.lifetime { loaded[id] = max(loaded[id] ?? 0, seconds) }
                offset += KnownObjects.recordSize
            }
        }
        seen.withLock { $0 = loaded }
        if records > 65536 && records > 2 * loaded.count { rewrite(loaded) }
    }

    /// Replaces the file by the live sightings (expired and repeated
    /// records dropped). A sighting appended meanwhile by another process
    /// may be lost, which only costs a HEAD.
    private func rewrite(_ live: [ObjectID: Double]) {
        let temp = path + ".\(getpid()).tmp"
        var bytes: [UInt8] = []
        bytes.reserveCapacity(live.count * KnownObjects.recordSize)
        for (id, seconds) in live { append(id, seconds: UInt64(seconds), to: &bytes) }
        guard FileManager.default.createFile(atPath: temp, contents: Data(bytes)) else { return }
        if rename(temp, path) != 0 { unlink(temp) }
    }

    private func append(_ id: ObjectID, seconds: UInt64, to bytes: inout [UInt8]) {
        bytes += id.bytes
        withUnsafeBytes(of: seconds.littleEndian) { bytes += $0 }
    }

    func contains(_ id: ObjectID) -> Bool {
        seen.withLock { $0[id] != nil }
    }

    func insert(_ id: ObjectID) {
        let isNew = seen.withLock { $0.updateValue(Date().timeIntervalSince1970, forKey: id) == nil }
        if isNew { fresh.withLock { $0.append(id) } }
    }

    /// Appends the new sightings to the file. Best effort: losing them only
    /// costs HEAD requests later.
    func save() {
        let ids = fresh.withLock { ids in defer { ids.removeAll() }; return ids }
        guard !ids.isEmpty else { return }
        let now = UInt64(Date().timeIntervalSince1970)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * KnownObjects.recordSize)
        for id in ids { append(id, seconds: now, to: &bytes) }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
