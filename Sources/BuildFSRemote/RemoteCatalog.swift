import BuildFSCore
import Synchronization

/// What this process knows the server holds: the packs named by the pack
/// maps of the snapshots it opened, and the packs it uploaded itself, with
/// where each object lies in them. A save skips every object found here
/// (the parent snapshot's packs hold it), and a read fetches the block that
/// holds its object.
final class RemoteCatalog: Sendable {
    /// A block of a pack on the server: the unit of fetching and caching.
    struct Block: Hashable, Sendable {
        var pack: ObjectID
        var offset: UInt64
    }

    struct BlockObjects: Sendable {
        var length: UInt32
        /// The objects of the block that some opened snapshot needs.
        var objects: [(ObjectID, PackSlot)]
    }

    private struct State {
        var packSizes: [ObjectID: UInt64] = [:]
        var locations: [ObjectID: (pack: ObjectID, slot: PackSlot)] = [:]
        var blocks: [Block: BlockObjects] = [:]
        var loadedMaps: Set<ObjectID> = []
    }

    private let state = Mutex(State())

    func contains(_ id: ObjectID) -> Bool { state.withLock { $0.locations[id] != nil } }

    /// The block holding `id`, and the object's slot in it.
    func location(_ id: ObjectID) -> (block: Block, slot: PackSlot)? {
        state.withLock { state in
            state.locations[id].map { (Block(pack: $0.pack, offset: $0.slot.blockOffset), $0.slot) }
        }
    }

    func objects(in block: Block) -> BlockObjects? { state.withLock { $0.blocks[block] } }

    /// The blocks of `pack` that some opened snapshot needs.
    func blocks(inPack pack: ObjectID) -> [Block] {
        state.withLock { $0.blocks.keys.filter { $0.pack == pack } }
    }

    func packSize(_ digest: ObjectID) -> UInt64? { state.withLock { $0.packSizes[digest] } }

    func add(_ map: PackMap, id: ObjectID) {
        state.withLock { state in
            guard state.loadedMaps.insert(id).inserted else { return }
            for entry in map.entries {
                let pack = map.packs[entry.pack]
                RemoteCatalog.record(entry.id, pack: pack.digest, size: pack.size, slot: entry.slot, in: &state)
            }
        }
    }

    /// Registers a pack this process uploaded.
    func add(pack digest: ObjectID, size: UInt64, entries: [(ObjectID, PackSlot)]) {
        state.withLock { state in
            for (id, slot) in entries { RemoteCatalog.record(id, pack: digest, size: size, slot: slot, in: &state) }
        }
    }

    private static func record(_ id: ObjectID, pack: ObjectID, size: UInt64, slot: PackSlot, in state: inout State) {
        state.packSizes[pack] = size
        guard state.locations[id] == nil else { return }
        state.locations[id] = (pack, slot)
        let block = Block(pack: pack, offset: slot.blockOffset)
        state.blocks[block, default: BlockObjects(length: slot.blockLength, objects: [])].objects.append((id, slot))
    }

    /// The map of a snapshot whose objects are `ids`, of which `trees` are
    /// trees; the ids this catalog knows no pack for are returned apart.
    func map(of ids: some Sequence<ObjectID>, trees: Set<ObjectID>) -> (map: PackMap, unknown: [ObjectID]) {
        state.withLock { state in
            var map = PackMap()
            var packNumbers: [ObjectID: Int] = [:]
            var unknown: [ObjectID] = []
            for id in ids {
                guard let (pack, slot) = state.locations[id] else {
                    unknown.append(id)
                    continue
                }
                let number = packNumbers[pack] ?? {
                    map.packs.append(PackMap.Pack(digest: pack, size: state.packSizes[pack] ?? 0))
                    packNumbers[pack] = map.packs.count - 1
                    return map.packs.count - 1
                }()
                map.entries.append(PackMap.Entry(id: id, pack: number, slot: slot, isTree: trees.contains(id)))
            }
            return (map, unknown)
        }
    }
}
