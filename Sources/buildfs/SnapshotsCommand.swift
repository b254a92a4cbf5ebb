import ArgumentParser
import BuildFSCore
import Foundation

struct SnapshotsCommand: BuildFSCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "List the snapshots in the store, newest first.",
        discussion: """
            SIZE is the bytes of file contents; ADDED is what the snapshot added to the
            store after dedup and compression when it was made.

            Example:
              buildfs snapshots
              buildfs snapshots --json | jq '.[].key'
            """)

    @Flag(help: "Print JSON for scripts instead of a table.")
    var json = false

    @OptionGroup var storeOptions: StoreOptions

    func execute() throws {
        let store = try storeOptions.open()
        defer { store.close() }
        let listing = try store.listRefs()
        for damaged in listing.damaged { Console.warning("\(damaged.name): \(damaged.reason)") }
        let refs = listing.refs.sorted { ($0.created, $0.key) > ($1.created, $1.key) }
        if json {
            print(try SnapshotsCommand.json(refs))
            return
        }
        if refs.isEmpty {
            print("no snapshots in \(store.location)")
            return
        }
        var rows = [["KEY", "CREATED", "LAST USED", "FILES", "SIZE", "ADDED"]]
        for ref in refs {
            rows.append([ref.key, SnapshotsCommand.date(ref.created), SnapshotsCommand.date(ref.lastUsed),
                         "\(ref.files)", ByteCount.human(ref.logicalBytes), ByteCount.human(ref.addedBytes)])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
    }

    static func json(_ refs: [SnapshotRef]) throws -> String {
        struct Listed: Encodable {
            var ref: SnapshotRef
            func encode(to encoder: any Encoder) throws {
                try ref.encode(to: encoder)
                var container = encoder.container(keyedBy: Extra.self)
                try container.encode(ref.lastUsed, forKey: .lastUsed)
            }
            enum Extra: String, CodingKey { case lastUsed }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(refs.map(Listed.init)), as: UTF8.self)
    }

    static func date(_ seconds: Double) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }
}
