import ArgumentParser
import BuildFSCore
import Foundation

struct GCCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Shrink the store: evict snapshots least recently used first, then sweep.",
        discussion: """
            Snapshots are evicted, least recently used first (a mount or an export
            counts as a use), until every limit holds; then everything no remaining
            snapshot needs is removed. Safe while imports, commits and mounts run: gc
            waits for writers in flight, and they wait for it. Sizes use K, M, G, T
            (powers of 1000, as ccache) or Ki, Mi, Gi, Ti; durations use s, m, h, d, w.
            --keep N alone keeps only the N most recently used snapshots (as restic's
            --keep-last); beside --max-size or --max-age, at least those N stay.

            Example:
              buildfs gc --keep 5
              buildfs gc --max-size 5G --max-age 7d --keep 3
              buildfs gc --max-size 5G --dry-run
            """)

    @Option(help: ArgumentHelp("Keep the store at most this large (e.g. 5G, 500M).", valueName: "size"))
    var maxSize: String?

    @Option(help: ArgumentHelp("Evict snapshots not used for this long (e.g. 7d, 12h).", valueName: "duration"))
    var maxAge: String?

    @Option(help: ArgumentHelp("Keep the N most recently used snapshots: alone, only those; with --max-size or --max-age, at least those.", valueName: "n"))
    var keep: Int?

    @Flag(help: "Print what would be done, do nothing.")
    var dryRun = false

    @Flag(help: "Print JSON for scripts.")
    var json = false

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        if let keep, keep < 0 { throw ValidationError("--keep must be 0 or more") }
    }

    func execute() throws {
        let policy = GCPolicy(maxSize: try maxSize.map(Quantities.parseSize),
                              maxAge: try maxAge.map(Quantities.parseDuration), keep: keep)
        let store = try storeOptions.openLocal(
            for: "gc",
            remoteAdvice: "a remote cache evicts on its own (nginx: a cron job deleting files not read for days; "
                + "bazel-remote: --max_size); see docs/remote-store.md. This machine's cache of it can simply be deleted")
        let plan = try GarbageCollector(store: store).run(policy, dryRun: dryRun)
        if json {
            let object: [String: Any] = [
                "dryRun": dryRun,
                "evicted": plan.evict.map(\.key),
                "kept": plan.kept.map(\.key),
                "packsRemoved": plan.removePacks.count + plan.unindexedPacks.count,
                "packsRewritten": plan.rewritePacks.count,
                "bytesBefore": plan.bytesBefore,
                "bytesAfter": plan.bytesAfter,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let verb = dryRun ? "would evict" : "evicted"
        for ref in plan.evict { print("\(verb) '\(ref.key)' (last used \(SnapshotsCommand.date(ref.lastUsed)))") }
        print((dryRun ? "gc (dry run): " : "gc: ")
              + "\(plan.evict.count) snapshots evicted, \(plan.kept.count) kept; "
              + "\(plan.removePacks.count + plan.unindexedPacks.count) packs removed, \(plan.rewritePacks.count) rewritten; "
              + "store \(ByteCount.human(plan.bytesBefore)) -> \(ByteCount.human(plan.bytesAfter))")
    }
}

struct FsckCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Check the store: re-hash every object, check every snapshot is complete.",
        discussion: """
            Names what is wrong (corrupt or missing objects, broken snapshots, damaged
            refs and pack indexes) and exits 1 when anything is. --repair removes the
            corrupt objects and the snapshots that can no longer be read, and nothing
            healthy.

            Example:
              buildfs fsck
              buildfs fsck --repair
            """)

    @Flag(help: "Remove corrupt objects and the snapshots that cannot be read.")
    var repair = false

    @OptionGroup var storeOptions: StoreOptions

    func execute() throws {
        let store = try storeOptions.openLocal(
            for: "fsck",
            remoteAdvice: "objects fetched from a remote store are checked against their ids on every read, and never used when they do not match")
        let checker = StoreChecker(store: store)
        let report = try checker.check()
        for item in report.corrupt { print("corrupt object \(item.id.hex) in pack \(item.pack): \(item.reason)") }
        for item in report.damagedIndexes { print("damaged pack index \(item.name): \(item.reason)") }
        for item in report.damagedRefs { print("damaged ref \(item.name): \(item.reason)") }
        for item in report.brokenSnapshots { print("snapshot '\(item.key)' cannot be read: \(item.reason)") }
        print("checked \(report.objects) objects in \(report.packs) packs and \(report.snapshots) snapshots: "
              + (report.isClean ? "no damage" : "\(report.corrupt.count) corrupt objects, \(report.brokenSnapshots.count) broken snapshots")
              + (report.unreferencedObjects > 0 ? "; \(report.unreferencedObjects) objects unreferenced (gc removes them)" : ""))
        guard !report.isClean else { return }
        if repair {
            try checker.repair(report)
            print("repaired: removed \(report.corrupt.count) corrupt objects, \(report.brokenSnapshots.count) snapshots, "
                  + "\(report.damagedRefs.count) damaged refs, \(report.damagedIndexes.count) damaged pack indexes")
            return
        }
        Console.error("the store is damaged; `buildfs fsck --repair` removes what cannot be read")
        throw ExitCode(1)
    }
}
