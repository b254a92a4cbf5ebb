import Foundation
import Glibc

/// One finished pack as gc and fsck see it.
public struct PackInfo: Sendable {
    public var name: String
    /// Bytes of the .pack and .idx files.
    public var bytes: UInt64
    public var entries: [(id: ObjectID, slot: PackSlot)]

    /// Each object's share of the stored bytes: its block's stored size
    /// split by the object's part of the block's content.
    public func storedSizes() -> [ObjectID: UInt64] {
        var blockContent: [UInt64: UInt64] = [:]
        for entry in entries { blockContent[entry.slot.blockOffset, default: 0] += UInt64(entry.slot.length) }
        var sizes: [ObjectID: UInt64] = [:]
        for entry in entries {
            let total = max(blockContent[entry.slot.blockOffset] ?? 1, 1)
            sizes[entry.id] = UInt64(entry.slot.blockLength) * UInt64(entry.slot.length) / total
        }
        return sizes
    }
}

/// Everything in a local store's directories, for gc and fsck.
public struct StoreInventory: Sendable {
    public var packs: [PackInfo] = []
    /// Pack files without an index (a writer died before finishing them).
    public var unindexedPacks: [String] = []
    /// Index files that cannot be read, with why.
    public var damagedIndexes: [(name: String, reason: String)] = []
    /// Files left in tmp/ by writers that died.
    public var temporaryFiles: [String] = []

    public var totalBytes: UInt64 { packs.reduce(0) { $0 + $1.bytes } }
}

extension LocalStore {
    /// The indexes come from the catalog, which loaded them when the store
    /// was opened: one load serves the command's reads and its inventory.
    public func inventory() throws -> StoreInventory {
        var inventory = StoreInventory()
        let packsDir = root + "/packs"
        let names = try FileDescriptor.open(packsDir, O_RDONLY | O_DIRECTORY).directoryEntries()
            .map { String(decoding: $0, as: UTF8.self) }
        let indexed = Set(names.filter { $0.hasSuffix(".idx") }.map { String($0.dropLast(4)) })
        for name in names where name.hasSuffix(".pack") && !indexed.contains(String(name.dropLast(5))) {
            inventory.unindexedPacks.append(String(name.dropLast(5)))
        }
        // After the listing: every index listed is loaded, unless removed since.
        try catalog.refresh()
        let entries = catalog.entriesByPack()
        let damaged = catalog.damaged
        for name in indexed.sorted() {
            if let reason = damaged[name] {
                inventory.damagedIndexes.append((name, reason))
                continue
            }
            guard let packEntries = entries[name] else { continue }
            inventory.packs.append(PackInfo(name: name, bytes: fileSize(packPath(name + ".pack")) + fileSize(packPath(name + ".idx")),
                                            entries: packEntries))
        }
        inventory.temporaryFiles = try FileDescriptor.open(root + "/tmp", O_RDONLY | O_DIRECTORY)
            .directoryEntries().map { String(decoding: $0, as: UTF8.self) }
        return inventory
    }

    private func fileSize(_ path: String) -> UInt64 {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_size) : 0
    }

    /// The pack that holds `id`, if any.
    public func packName(holding id: ObjectID) -> String? { catalog.lookup(id)?.pack }

    /// Forgets every pack and loads the indexes again (after packs were removed).
    public func reloadPacks() throws {
        try catalog.reload()
        closePackFiles()
    }

    /// Removes a pack: its index first, so no reader is ever sent to a pack
    /// that is gone.
    public func removePack(_ name: String) throws {
        for suffix in [".idx", ".pack"] {
            let path = packPath(name + suffix)
            if unlink(path) != 0 && errno != ENOENT { throw SystemCallError("remove", path) }
        }
    }

    /// Copies the objects of `pack` that are in `keep` into a new pack, makes
    /// it durable, then removes the old pack. Killed at any point, every kept
    /// object is in the old pack, the new one, or both.
    public func rewritePack(_ pack: PackInfo, keeping keep: Set<ObjectID>) throws {
        let writer = PackWriter(store: self)
        do {
            // In the order they were written: neighbours share blocks again
            // and compress as well as before (index order is by id).
            let ordered = pack.entries.sorted { ($0.slot.blockOffset, $0.slot.offsetInBlock) < ($1.slot.blockOffset, $1.slot.offsetInBlock) }
            for entry in ordered where keep.contains(entry.id) {
                let content = try get(entry.id, maxLength: Int(entry.slot.length))
                try content.withUnsafeBytes { try writer.putAlways(entry.id, content: $0) }
            }
            _ = try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        try removePack(pack.name)
    }

    public func removeTemporaryFile(_ name: String) {
        unlink(tempPath(name))
    }

    /// Removes a ref file (gc evicting a snapshot, fsck dropping a broken one).
    public func removeRef(key: String) throws {
        let path = refPath(key)
        if unlink(path) != 0 && errno != ENOENT { throw SystemCallError("remove", path) }
    }

    public func removeRefFile(named fileName: String) {
        unlink("\(root)/refs/\(fileName)")
    }

    /// Holds the store alone (see StoreLock) while `body` runs.
    public func exclusively<R>(timeout: Double = 600, _ body: () throws -> R) throws -> R {
        let lock = try StoreLock.exclusive(root, timeout: timeout)
        defer { withExtendedLifetime(lock) {} }
        return try body()
    }
}

extension LocalStore {
    /// Re-reads every block of `pack` and re-hashes every object in it;
    /// returns the objects that are not what their id says, with why.
    public func verify(_ pack: PackInfo) -> [(id: ObjectID, reason: String)] {
        var damaged: [(id: ObjectID, reason: String)] = []
        let path = packPath(pack.name + ".pack")
        guard let file = try? FileDescriptor.open(path, O_RDONLY) else {
            return pack.entries.map { ($0.id, "pack file \(pack.name).pack is missing") }
        }
        let decompressor = ZstdDecompressor()
        let blocks = Dictionary(grouping: pack.entries, by: { $0.slot.blockOffset })
        for (offset, entries) in blocks {
            let length = Int(entries[0].slot.blockLength)
            var stored = [UInt8](repeating: 0, count: length)
            let content: [UInt8]
            do {
                let n = try stored.withUnsafeMutableBytes { try file.readFully(into: $0, at: offset) }
                guard n == length else { throw BuildFSError.corruptObject(id: entries[0].id.hex, reason: "pack is truncated") }
                content = try stored.withUnsafeBytes {
                    try BlockCodec.decode($0, objectID: entries[0].id, decompressor: decompressor)
                }
            } catch let error as any ReportableError {
                let reason: String
                if case let .corruptObject(_, why)? = error as? BuildFSError { reason = why } else { reason = error.description }
                damaged += entries.map { ($0.id, "block at \(offset) of \(pack.name): \(reason)") }
                continue
            } catch {
                damaged += entries.map { ($0.id, "\(error)") }
                continue
            }
            for entry in entries {
                let end = Int(entry.slot.offsetInBlock) + Int(entry.slot.length)
                guard end <= content.count else {
                    damaged.append((entry.id, "slot outside its block"))
                    continue
                }
                let bytes = content[Int(entry.slot.offsetInBlock)..<end]
                if bytes.withUnsafeBytes({ ObjectID.hashing($0) }) != entry.id {
                    damaged.append((entry.id, "content does not hash to its id"))
                }
            }
        }
        return damaged
    }
}
