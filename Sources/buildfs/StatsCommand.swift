import ArgumentParser
import BuildFSCore
import BuildFSRemote
import BuildFSMount
import Foundation

struct StatsCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show what the store holds and what a mount did, like `ccache -s`.",
        discussion: """
            Store: the bytes of all snapshots' files (logical), of their distinct chunks
            after dedup (unique), and of the whole store on disk after compression
            (stored: chunks, directory trees and indexes), with the ratios between them.
            Mount: the FUSE transport and the kernel features it runs with, bytes read
            from the store, chunk cache hits and misses, files copied up on their first
            write, directories expanded, and bytes its commits added.

            Example:
              buildfs stats /work
              buildfs stats --json
            """)

    @Argument(help: ArgumentHelp("A buildfs mount to report on as well.", valueName: "mountpoint"))
    var mountpoint: String?

    @Flag(help: "Print JSON for scripts.")
    var json = false

    @OptionGroup var storeOptions: StoreOptions

    func execute() throws {
        var mountReport: [String: Any]?
        var location = storeOptions.location
        if let mountpoint {
            let point = MountPreflight.resolvedPath(mountpoint)
            guard let record = MountRegistry.read(point) else {
                throw BuildFSError.badTarget(path: mountpoint, reason: "is not a buildfs mount of this machine")
            }
            if storeOptions.store == nil, let store = record.store { location = store }
            var counters: [String: Any] = MountRegistry.counters(for: point)
            counters["bytesCommitted"] = MountRegistry.committed(for: point)
            counters["mountpoint"] = point
            counters["upper"] = record.upper
            counters["snapshot"] = SnapshotLayer.recorded(in: record.upper)?.key ?? ""
            counters["transport"] = MountRegistry.transport(for: point) ?? ""
            mountReport = counters
        }
        let opened = try storeOptions.open(location: location)
        defer { opened.close() }
        let remote = opened as? HTTPStore
        // For a remote store: its snapshots, and this machine's cache of it.
        guard let store = remote?.cacheStore ?? (opened as? LocalStore) else {
            throw BuildFSError.usage("`buildfs stats` reads local and HTTP stores; \(opened.location) is neither")
        }
        let inventory = try store.inventory()
        var objects = Set<ObjectID>()
        for pack in inventory.packs { objects.formUnion(pack.entries.map(\.id)) }
        let refs = try opened.listRefs().refs
        let logical = refs.reduce(UInt64(0)) { $0 + $1.logicalBytes }
        // Counting unique content reads every tree: not over the network.
        let uniqueBytes = remote == nil ? try ContentCensus.uniqueFileBytes(of: refs, in: store) : 0
        let stored = inventory.totalBytes
        func ratio(_ a: UInt64, _ b: UInt64) -> Double { b == 0 ? 0 : (Double(a) / Double(b) * 100).rounded() / 100 }
        var storeReport: [String: Any] = [
            "location": opened.location, "snapshots": refs.count, "packs": inventory.packs.count, "objects": objects.count,
            "logicalBytes": logical, "uniqueBytes": uniqueBytes, "storedBytes": stored,
            "dedupRatio": ratio(logical, uniqueBytes), "compressionRatio": ratio(uniqueBytes, stored),
        ]
        if let remote {
            storeReport = ["location": remote.location, "snapshots": refs.count, "logicalBytes": logical,
                           "cache": ["location": store.root, "packs": inventory.packs.count,
                                     "objects": objects.count, "storedBytes": stored]]
        }
        if json {
            var all: [String: Any] = ["store": storeReport]
            if let mountReport { all["mount"] = mountReport }
            let data = try JSONSerialization.data(withJSONObject: all, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        func row(_ label: String, _ value: String) { print(label.padding(toLength: 34, withPad: " ", startingAt: 0) + value) }
        if let remote {
            print("Store \(remote.location) (remote; sizes are kept by the server)")
            row("  snapshots (in its prefix index)", "\(refs.count)")
            row("  logical size (those snapshots)", ByteCount.human(logical))
            print("Cache \(store.root)")
            row("  stored (after compression)", ByteCount.human(stored))
            row("  packs / objects", "\(inventory.packs.count) / \(objects.count)")
        } else {
            print("Store \(store.root)")
            row("  snapshots", "\(refs.count)")
            row("  logical size (all snapshots)", ByteCount.human(logical))
            row("  unique content (after dedup)", ByteCount.human(uniqueBytes) + "  (dedup \(ratio(logical, uniqueBytes))x)")
            row("  stored (after compression)", ByteCount.human(stored) + "  (compression \(ratio(uniqueBytes, stored))x)")
            row("  packs / objects", "\(inventory.packs.count) / \(objects.count)")
        }
        if let mount = mountReport {
            func number(_ key: String) -> UInt64 { mount[key] as? UInt64 ?? 0 }
            let hits = number("chunkCacheHits"), misses = number("chunkCacheMisses")
            print("Mount \(mount["mountpoint"] ?? "")" + ((mount["snapshot"] as? String).map { $0.isEmpty ? "" : " over '\($0)'" } ?? ""))
            if let transport = mount["transport"] as? String, !transport.isEmpty { row("  FUSE transport", transport) }
            row("  bytes served from the store", ByteCount.human(number("bytesServedFromStore")))
            row("  chunk cache hits / misses", "\(hits) / \(misses)"
                + (hits + misses > 0 ? String(format: "  (%.1f%% hits)", Double(hits) * 100 / Double(hits + misses)) : ""))
            if remote != nil { row("  chunk reads over the network", "\(number("chunksFetchedOnRead"))") }
            row("  files copied up", "\(number("filesCopiedUp"))")
            row("  directories expanded", "\(number("directoriesExpanded"))")
            row("  files put into the page cache", "\(number("filesPutInPageCache"))")
            row("  bytes committed", ByteCount.human(number("bytesCommitted")))
        }
    }
}
