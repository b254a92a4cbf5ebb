import BuildFSCore
/// The inode table's map from file identity to Inode, in 8 bytes a slot: an
/// open-addressing hash table (linear probing, at most 3/4 full) of strong
/// references whose keys are read from the inodes themselves. A Dictionary
/// of key and entry took 32 bytes a slot, and 16 MB at 200k inodes.
struct InodeMap: ~Copyable {
    private var slots: UnsafeMutablePointer<Unmanaged<Inode>?>
    private var mask: Int
    private(set) var count = 0

    init() {
        mask = 1023
        slots = Self.allocate(mask + 1)
    }

    deinit {
        for i in 0...mask { slots[i]?.release() }
        slots.deallocate()
    }

    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Unmanaged<Inode>?> {
        let slots = UnsafeMutablePointer<Unmanaged<Inode>?>.allocate(capacity: capacity)
        slots.initialize(repeating: nil, count: capacity)
        return slots
    }

    /// Fibonacci hashing: inode numbers come in runs, this spreads them.
    private func home(_ key: InodeKey) -> Int {
        let mixed = (key.inode ^ (key.device &* 0xFF51_AFD7_ED55_8CCD)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> 32) & mask
    }

    /// The slot holding `key`, or the empty slot where it would go.
    private func slot(of key: InodeKey) -> Int {
        var i = home(key)
        while let inode = slots[i], inode.takeUnretainedValue().key != key { i = (i + 1) & mask }
        return i
    }

    func find(_ key: InodeKey) -> Inode? {
        slots[slot(of: key)]?.takeUnretainedValue()
    }

    /// Adds an inode whose key is not in the map yet; the map holds a reference.
    mutating func insert(_ inode: Inode) {
        if (count + 1) * 4 > (mask + 1) * 3 { grow() }
        slots[slot(of: inode.key)] = .passRetained(inode)
        count += 1
    }

    /// Takes `inode` out if it is the one the map holds for its key.
    mutating func remove(_ inode: Inode) {
        var hole = slot(of: inode.key)
        guard let held = slots[hole], held.toOpaque() == Unmanaged.passUnretained(inode).toOpaque() else { return }
        held.release()
        count -= 1
        // Backward shift: move up every later entry of the run whose probe
        // path crosses the hole, so lookups never stop early at it.
        var i = hole
        while true {
            slots[hole] = nil
            repeat {
                i = (i + 1) & mask
                guard let next = slots[i] else { return }
                let start = home(next.takeUnretainedValue().key)
                if (i - start) & mask >= (i - hole) & mask { break }
            } while true
            slots[hole] = slots[i]
            hole = i
        }
    }

    func forEach(_ body: (Inode) -> Void) {
        for i in 0...mask {
            if let inode = slots[i] { body(inode.takeUnretainedValue()) }
        }
    }

    private mutating func grow() {
        let old = slots, oldCapacity = mask + 1
        mask = oldCapacity * 2 - 1
        slots = Self.allocate(mask + 1)
        for i in 0..<oldCapacity {
            if let inode = old[i] { slots[slot(of: inode.takeUnretainedValue().key)] = inode }
        }
        old.deallocate()
    }
}
