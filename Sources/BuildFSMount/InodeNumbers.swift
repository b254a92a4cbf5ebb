/// The numbers the kernel knows inodes by (FUSE node ids), checked when the
/// kernel hands one back. A number is a slot of this table in its low 32
/// bits (offset by 2: 0 is "no inode", 1 the root's) and, in its high 32,
/// the generation it was handed out in; a number that was never given, or
/// whose inode is forgotten, finds nothing (ESTALE for the request) rather
/// than another inode or, as when numbers were addresses, freed memory.
///
/// Slots hold unretained references: the inode map holds the inodes, and
/// an inode leaves both together, under the table's lock.
struct InodeNumbers {
    private var slots: [Unmanaged<Inode>?] = []
    private var freeSlots: [UInt32] = []
    /// Bumped per number handed out (wrapping): a reused slot gets a new
    /// number, so a stale one does not find the slot's next inode.
    private var generation: UInt32 = 0

    static let firstSlotNumber: UInt64 = 2

    /// Hands out a number, makes the inode for it, and records it.
    mutating func add(_ makeInode: (UInt64) -> Inode) -> Inode {
        let slot = freeSlots.popLast().map(Int.init) ?? slots.count
        generation &+= 1
        let inode = makeInode(UInt64(generation) << 32 | (UInt64(slot) + Self.firstSlotNumber))
        if slot == slots.count { slots.append(.passUnretained(inode)) } else { slots[slot] = .passUnretained(inode) }
        return inode
    }

    /// The inode the number was handed out for, if it is still known.
    func inode(_ number: UInt64) -> Inode? {
        let slot = Int(number & 0xFFFF_FFFF) - Int(Self.firstSlotNumber)
        guard slot >= 0, slot < slots.count, let held = slots[slot] else { return nil }
        let inode = held.takeUnretainedValue()
        return inode.number == number ? inode : nil
    }

    mutating func remove(_ inode: Inode) {
        let slot = Int(inode.number & 0xFFFF_FFFF) - Int(Self.firstSlotNumber)
        guard slot >= 0, slot < slots.count, slots[slot]?.takeUnretainedValue() === inode else { return }
        slots[slot] = nil
        freeSlots.append(UInt32(slot))
    }
}
