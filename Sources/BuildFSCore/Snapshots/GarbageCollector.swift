import Foundation

/// What `buildfs gc` may keep.
public struct GCPolicy: Sendable {
    /// The store (packs and indexes) must end at most this large.
    public var maxSize: UInt64?
    /// Snapshots not used for longer than this (seconds) go.
    public var maxAge: Double?
    /// Alone: exactly the N most recently used snapshots stay (restic's
    /// --keep-last). Beside a size or age limit: a floor, the N most recently
    /// used stay whatever that limit says.
    public var keep: Int?

    public init(maxSize: UInt64? = nil, maxAge: Double? = nil, keep: Int? = nil) {
        self.maxSize = maxSize
        self.maxAge = maxAge
        self.keep = keep
    }
}

/// Everything a gc run will do, decided before anything is done, so that a
/// dry run prints exactly what a real run does.
public struct GCPlan: Sendable {
    public var evict: [SnapshotRef] = []
    public var kept: [SnapshotRef] = []
    /// Packs with no live object: removed.
    public var removePacks: [String] = []
    /// Packs mostly dead: their live objects move to a new pack.
    public var rewritePacks: [(pack: PackInfo, live: Set<ObjectID>)] = []
    public var temporaryFiles: [String] = []
    public var unindexedPacks: [String] = []
    public var bytesBefore: UInt64 = 0
    /// Estimated from the stored size of every live object.
    public var bytesAfter: UInt64 = 0
}

/// `buildfs gc`: evicts snapshots least recently used first until every
/// limit holds, then sweeps what no remaining snapshot needs. Runs under the
/// store's exclusive lock (see StoreLock and docs/gc-protocol.md), so no
/// import or commit is between "the store has it" and its ref meanwhile.
public final class GarbageCollector {
    /// A pack whose live part is smaller than this share is rewritten.
    public static let rewriteBelowLiveShare = 0.5

    let store: LocalStore

    public init(store: LocalStore) { self.store = store }

    /// Plans and, unless `dryRun`, executes.
    public func run(_ policy: GCPolicy, dryRun: Bool, now: Double = Date().timeIntervalSince1970,
                    lockTimeout: Double = 600) throws -> GCPlan {
        try store.exclusively(timeout: lockTimeout) {
            let plan = try self.plan(policy, now: now)
            if !dryRun { try execute(plan) }
            return plan
        }
    }

    func plan(_ policy: GCPolicy, now: Double) throws -> GCPlan {
        let listing = try store.listRefs()
        if let damaged = listing.damaged.first {
            throw BuildFSError.storeUnusable(path: store.root, reason: "ref \(damaged.name) is damaged (\(damaged.reason)); run `buildfs fsck --repair` first")
        }
        let inventory = try store.inventory()
        if let damaged = inventory.damagedIndexes.first {
            throw BuildFSError.storeUnusable(path: store.root, reason: "pack index \(damaged.name) is damaged; run `buildfs fsck --repair` first")
        }
        var plan = GCPlan()
        plan.bytesBefore = inventory.totalBytes
        plan.temporaryFiles = inventory.temporaryFiles
        plan.unindexedPacks = inventory.unindexedPacks

        // Most recently used first; the first `keep` are protected.
        var remaining = listing.refs.sorted { ($0.lastUsed, $0.created, $0.key) > ($1.lastUsed, $1.created, $1.key) }
        let protectedCount = min(policy.keep ?? 0, remaining.count)
        if let maxAge = policy.maxAge {
            let tooOld = remaining[protectedCount...].filter { now - $0.lastUsed > maxAge }
            plan.evict += tooOld
            remaining.removeAll { ref in tooOld.contains { $0.key == ref.key } }
        }
        if let keep = policy.keep, policy.maxSize == nil, policy.maxAge == nil, remaining.count > keep {
            plan.evict += remaining[keep...]
            remaining.removeLast(remaining.count - keep)
        }

        var sizes: [ObjectID: UInt64] = [:]
        for pack in inventory.packs { sizes.merge(pack.storedSizes()) { max($0, $1) } }
        func indexBytes(_ live: Int) -> UInt64 { UInt64(live) * 40 }
        // Live mounts read their snapshots through leases: their roots stay,
        // even when their refs are evicted.
        let leases = Lease.liveRoots(in: store).map(Reachability.Claim.lease)
        func markAll() throws -> [ObjectID: Double] {
            try Reachability.mark(remaining.map(Reachability.Claim.init) + leases, in: store)
        }
        var lastUse = try markAll()
        if let maxSize = policy.maxSize {
            // Evicting every ref used at or before t leaves exactly the
            // objects whose newest user is after t: walk that order once.
            let byAge = lastUse.sorted { $0.value < $1.value }
            var liveBytes = byAge.reduce(UInt64(0)) { $0 + (sizes[$1.key] ?? 0) } + indexBytes(byAge.count)
            var cursor = 0
            while liveBytes > maxSize, remaining.count > protectedCount {
                let victim = remaining.removeLast()
                plan.evict.append(victim)
                while cursor < byAge.count && byAge[cursor].value <= victim.lastUsed {
                    liveBytes -= min(liveBytes, (sizes[byAge[cursor].key] ?? 0) + 40)
                    cursor += 1
                }
            }
            if !plan.evict.isEmpty { lastUse = try markAll() }
        }
        plan.kept = remaining

        // Packs with nothing live go; mostly dead ones are rewritten; the
        // rest stay, unless a size limit needs their dead bytes too (then the
        // deadest are rewritten first).
        var after: UInt64 = 0
        var partlyDead: [(pack: PackInfo, live: Set<ObjectID>, rewritten: UInt64)] = []
        for pack in inventory.packs {
            let live = Set(pack.entries.map(\.id).filter { lastUse[$0] != nil })
            if live.isEmpty {
                plan.removePacks.append(pack.name)
                continue
            }
            let packSizes = pack.storedSizes()
            let liveBytes = live.reduce(UInt64(0)) { $0 + (packSizes[$1] ?? 0) }
            let rewritten = liveBytes + indexBytes(live.count)
            if Double(liveBytes) < Double(packSizes.values.reduce(0, +)) * GarbageCollector.rewriteBelowLiveShare {
                plan.rewritePacks.append((pack, live))
                after += rewritten
            } else {
                after += pack.bytes
                if live.count < pack.entries.count { partlyDead.append((pack, live, rewritten)) }
            }
        }
        if let maxSize = policy.maxSize {
            for candidate in partlyDead.sorted(by: { $0.pack.bytes - $0.rewritten > $1.pack.bytes - $1.rewritten })
            where after > maxSize && candidate.rewritten < candidate.pack.bytes {
                plan.rewritePacks.append((candidate.pack, candidate.live))
                after -= candidate.pack.bytes - candidate.rewritten
            }
        }
        plan.bytesAfter = after
        return plan
    }

    /// Refs first: killed after that, the store holds only garbage too many,
    /// never a ref to a missing object. Then new packs before old ones go.
    func execute(_ plan: GCPlan) throws {
        for ref in plan.evict { try store.removeRef(key: ref.key) }
        for (pack, live) in plan.rewritePacks { try store.rewritePack(pack, keeping: live) }
        for name in plan.removePacks + plan.unindexedPacks { try store.removePack(name) }
        for name in plan.temporaryFiles { store.removeTemporaryFile(name) }
    }
}
