import Glibc
import Synchronization

/// The finished packs of a local store and where each object sits in them,
/// loaded from the `.idx` files. Other processes add packs at any time:
/// `refresh` picks up the new ones.
final class PackCatalog: Sendable {
    struct Location: Sendable {
        var pack: String
        var slot: PackSlot
    }

    private struct State {
        var packNames: [String] = []
        var loaded: Set<String> = []
        /// Pack number (into packNames) and slot.
        var slots: [ObjectID: (UInt32, PackSlot)] = [:]
        /// Entries of objects that an earlier pack holds too: reads use the
        /// first, gc and fsck see every copy.
        var shadowed: [(UInt32, ObjectID, PackSlot)] = []
        var damaged: [String: String] = [:]
    }

    let directory: String
    private let state = Mutex(State())

    init(directory: String) throws {
        self.directory = directory
        try refresh()
    }

    func lookup(_ id: ObjectID) -> Location? {
        state.withLock { state in
            state.slots[id].map { Location(pack: state.packNames[Int($0.0)], slot: $0.1) }
        }
    }

    func contains(_ id: ObjectID) -> Bool { state.withLock { $0.slots[id] != nil } }

    /// Index files that could not be read, with the reason.
    var damaged: [String: String] { state.withLock { $0.damaged } }

    /// The entries of every pack loaded, by pack name, in index order (by
    /// id): what the `.idx` files said, without reading them again.
    func entriesByPack() -> [String: [(id: ObjectID, slot: PackSlot)]] {
        let (names, slots, shadowed) = state.withLock { ($0.packNames, $0.slots, $0.shadowed) }
        var byNumber = [[(id: ObjectID, slot: PackSlot)]](repeating: [], count: names.count)
        for (id, (number, slot)) in slots { byNumber[Int(number)].append((id, slot)) }
        for (number, id, slot) in shadowed { byNumber[Int(number)].append((id, slot)) }
        return Dictionary(uniqueKeysWithValues: zip(names, byNumber.map { $0.sorted { $0.id < $1.id } }))
    }

    /// Forgets everything and loads the indexes again: after gc removed or
    /// rewrote packs, objects may sit elsewhere now.
    func reload() throws {
        state.withLock { $0 = State() }
        try refresh()
    }

    /// Loads the indexes of packs that appeared since the last look.
    func refresh() throws {
        let dir = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY)
        let names = try dir.directoryEntries().map { String(decoding: $0, as: UTF8.self) }
        let fresh = names.filter { $0.hasSuffix(".idx") }.map { String($0.dropLast(4)) }
            .filter { name in state.withLock { !$0.loaded.contains(name) } }
        for name in fresh {
            let path = "\(directory)/\(name).idx"
            do {
                let bytes = try FileDescriptor.open(path, O_RDONLY).readAll(limit: 1 << 30)
                add(pack: name, entries: try PackIndex.decode(bytes, name: path))
            } catch let error as SystemCallError where error.code == ENOENT {
                continue // removed meanwhile
            } catch let error as any ReportableError {
                state.withLock {
                    $0.loaded.insert(name)
                    $0.damaged[name] = error.description
                }
            }
        }
    }

    /// Registers a pack this process just finished.
    func add(pack name: String, entries: [(ObjectID, PackSlot)]) {
        state.withLock { state in
            guard state.loaded.insert(name).inserted else { return }
            let number = UInt32(state.packNames.count)
            state.packNames.append(name)
            for (id, slot) in entries {
                if state.slots[id] == nil {
                    state.slots[id] = (number, slot)
                } else {
                    state.shadowed.append((number, id, slot))
                }
            }
        }
    }
}
