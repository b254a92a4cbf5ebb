import Foundation
import Glibc

/// A live mount's claim on the snapshot it reads: a file in STORE/leases/
/// naming the root, with an flock held shared for as long as the daemon
/// runs. gc keeps every root of a lease whose lock is held, and deletes
/// leases whose lock it can take (their daemon died): see docs/gc-protocol.md.
public final class Lease: Sendable {
    private let file: FileDescriptor
    public let path: String

    struct Record: Codable {
        var root: String
        var holder: String
        var pid: Int32
    }

    init(store: LocalStore, root: ObjectID, holder: String) throws {
        let dir = store.root + "/leases"
        try makeDirectories(dir)
        path = dir + "/" + LocalStore.uniqueName() + ".lease"
        let data = try JSONEncoder().encode(Record(root: root.hex, holder: holder, pid: getpid()))
        try LocalStore.writeFile(path, Array(data), durable: true)
        file = try FileDescriptor.open(path, O_RDONLY)
        guard flock(file.raw, LOCK_SH) == 0 else { throw SystemCallError("lock", path) }
    }

    /// Gives the claim up (also done by the kernel if the process dies).
    public func release() {
        unlink(path)
        flock(file.raw, LOCK_UN)
    }

    /// Roots held by live leases; stale leases are removed on the way.
    static func liveRoots(in store: LocalStore) -> [ObjectID] {
        let dir = store.root + "/leases"
        guard let names = try? FileDescriptor.open(dir, O_RDONLY | O_DIRECTORY).directoryEntries() else { return [] }
        var roots: [ObjectID] = []
        for name in names.map({ String(decoding: $0, as: UTF8.self) }) where name.hasSuffix(".lease") {
            let path = dir + "/" + name
            guard let file = try? FileDescriptor.open(path, O_RDONLY) else { continue }
            if flock(file.raw, LOCK_EX | LOCK_NB) == 0 {
                unlink(path) // nobody holds it: its daemon is gone
                continue
            }
            if let bytes = try? file.readAll(limit: 1 << 16),
               let record = try? JSONDecoder().decode(Record.self, from: Data(bytes)),
               let root = ObjectID(hex: record.root) {
                roots.append(root)
            }
        }
        return roots
    }
}

extension LocalStore {
    /// Protects `root` and everything it reaches from gc until released.
    public func lease(root: ObjectID, holder: String) throws -> Lease {
        try Lease(store: self, root: root, holder: holder)
    }
}
