import BuildFSCore
import Foundation

/// Fetches blocks of the server's packs into the read-through cache, on a
/// fixed set of threads, most urgent first:
///
/// - `now`: a read is waiting for this block;
/// - `soon`: the rest of a file being read, or a restore;
/// - `background`: a mount's prefetch of its whole snapshot.
///
/// Each request covers a run of blocks queued one after another that also
/// follow each other in their pack (up to `maxRequestBytes`), so a file, or
/// a whole snapshot, arrives in a few large Range requests, in the order it
/// was asked for, and a block is never fetched twice at once. Blocks are
/// cached as they came; their objects are checked against their ids when
/// read. A server that ignores Range sends the whole pack (checked against
/// its name); then every block of it that an opened snapshot needs is kept.
final class BlockFetcher: @unchecked Sendable {
    typealias Block = RemoteCatalog.Block

    enum Urgency: Int, CaseIterable {
        case now = 0, soon, background
    }

    private enum Status {
        case queued(Urgency)
        case inFlight
        case done
        case failed(any Error)
    }

    static let maxRequestBytes: UInt64 = 4 << 20
    /// A mount's prefetch asks for less at a time: what it has in flight is
    /// what a read that starts waiting must queue behind (measured: 4 runs
    /// of 4 MiB held a first byte at RTT 10 ms for 0.1 s in the proxy).
    static let maxBackgroundRequestBytes: UInt64 = 1 << 20

    private let transport: HTTPTransport
    private let endpoint: RemoteEndpoint
    private let catalog: RemoteCatalog
    private let cache: ReadThroughCache
    private let maxThreads: Int

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var status: [Block: Status] = [:]
    private var queues: [[Block]] = Array(repeating: [], count: Urgency.allCases.count)
    private var heads: [Int] = Array(repeating: 0, count: Urgency.allCases.count)
    private var threads = 0
    private var idle = 0
    private var inFlight = 0
    private var inFlightInBackground = 0
    private var inFlightNow = 0
    /// A mount's prefetch leaves most connections to the reads that wait,
    /// but keeps about a round trip's worth of requests in flight: a
    /// quarter of the threads per 10 ms of RTT (4 requests of 1 MiB every
    /// 10 ms is 400 MB/s, more than a walk through a mount reads), leaving
    /// two threads to reads. Measured at RTT 50 ms, reading a whole 332 MB
    /// snapshot through a fresh mount: 4 in flight 2.5 s, 16 in flight 1.9 s.
    private var backgroundLimit: Int {
        Self.backgroundLimit(threads: maxThreads, roundTripMicros: transport.counters.fastestAnswer.load(ordering: .relaxed))
    }

    /// `roundTripMicros` Int.max: not measured yet.
    static func backgroundLimit(threads: Int, roundTripMicros: Int) -> Int {
        let base = max(1, threads / 4)
        let scaled = roundTripMicros == .max ? base : base * max(1, roundTripMicros / 10_000)
        return min(scaled, max(base, threads - 2))
    }
    /// Blocks were cached since the last flush of the cache.
    private var unflushed = false
    /// Whether the server answers Range requests; nil until the first
    /// answer, and until then one request at a time (a server without
    /// Range would send each parallel request the whole pack).
    private var serverSendsRanges: Bool?

    init(transport: HTTPTransport, endpoint: RemoteEndpoint, catalog: RemoteCatalog, cache: ReadThroughCache, threads: Int) {
        self.transport = transport
        self.endpoint = endpoint
        self.catalog = catalog
        self.cache = cache
        maxThreads = max(1, threads)
    }

    /// Queues the blocks not fetched yet (a queued one moves up to
    /// `urgency` if that is more urgent); with `wait`, returns once all are
    /// cached and throws the first failure among them.
    func fetch(_ blocks: [Block], urgency: Urgency, wait: Bool) throws {
        condition.lock()
        defer { condition.unlock() }
        queue(blocks, urgency: urgency)
        guard wait else { return }
        for block in blocks {
            waiting: while true {
                switch status[block] {
                case .done?:
                    break waiting
                case let .failed(error)?:
                    throw error
                case nil:
                    // Forgotten meanwhile (its copy was damaged): again.
                    queue([block], urgency: urgency)
                    condition.wait()
                default:
                    condition.wait()
                }
            }
        }
    }

    /// Queues the blocks not fetched yet and starts threads for them.
    /// Caller holds the lock.
    private func queue(_ blocks: [Block], urgency: Urgency) {
        var added = 0
        for block in blocks {
            switch status[block] {
            case .done?, .inFlight?:
                continue
            case let .queued(current)? where current.rawValue <= urgency.rawValue:
                continue
            default:
                status[block] = .queued(urgency)
                queues[urgency.rawValue].append(block)
                added += 1
            }
        }
        for _ in 0..<max(0, min(maxThreads - threads, added - idle)) {
            threads += 1
            let thread = Thread { [self] in work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
        condition.broadcast()
    }

    /// Makes the next `fetch` of `block` fetch it again (its cached copy
    /// turned out damaged). Not while it is in flight.
    func forget(_ block: Block) {
        condition.lock()
        defer { condition.unlock() }
        if case .inFlight? = status[block] { return }
        status[block] = nil
    }

    // MARK: workers

    private func work() {
        condition.lock()
        while true {
            guard let run = takeRun() else {
                if unflushed && inFlight == 0 {
                    // The last fetch is done: what was fetched goes to disk.
                    unflushed = false
                    condition.unlock()
                    cache.flush()
                    condition.lock()
                    continue
                }
                idle += 1
                condition.wait()
                idle -= 1
                continue
            }
            inFlight += 1
            if run.urgency == .background { inFlightInBackground += 1 }
            if run.urgency == .now { inFlightNow += 1 }
            condition.unlock()
            let outcome = Result { try fetchRun(run) }
            condition.lock()
            inFlight -= 1
            if run.urgency == .background { inFlightInBackground -= 1 }
            if run.urgency == .now { inFlightNow -= 1 }
            switch outcome {
            case let .success((cached, whole)):
                serverSendsRanges = !whole
                for block in run.blocks { status[block] = .failed(missingAfterFetch(block)) }
                for block in cached { status[block] = .done }
                unflushed = true
            case let .failure(error):
                for block in run.blocks { status[block] = .failed(error) }
            }
            condition.broadcast()
        }
    }

    private struct Run {
        var urgency: Urgency
        var pack: ObjectID
        var blocks: [Block]
        var range: Range<UInt64>
    }

    /// The most urgent queued block and the queued blocks right after it in
    /// its pack, marked in flight. Caller holds the lock.
    private func takeRun() -> Run? {
        if serverSendsRanges == nil && inFlight > 0 { return nil }
        for urgency in Urgency.allCases {
            // The prefetch waits while a read waits: its bandwidth is theirs.
            if urgency == .background && (inFlightInBackground >= backgroundLimit || inFlightNow > 0) { return nil }
            let q = urgency.rawValue
            while heads[q] < queues[q].count {
                let first = queues[q][heads[q]]
                heads[q] += 1
                guard case let .queued(current)? = status[first], current == urgency,
                      let objects = catalog.objects(in: first) else { continue }
                var run = Run(urgency: urgency, pack: first.pack, blocks: [first], range: first.offset..<first.offset + UInt64(objects.length))
                status[first] = .inFlight
                if serverSendsRanges == false {
                    // The whole pack comes anyway: every block queued in it.
                    for block in catalog.blocks(inPack: first.pack) where block != first {
                        if case .queued? = status[block] {
                            status[block] = .inFlight
                            run.blocks.append(block)
                        }
                    }
                    return run
                }
                // Queued right after it, and right after it in its pack too:
                // one request. (Only queue neighbours, so that a run never
                // jumps ahead of the order blocks were asked in.)
                let limit = urgency == .background ? BlockFetcher.maxBackgroundRequestBytes : BlockFetcher.maxRequestBytes
                while run.range.count < limit, heads[q] < queues[q].count {
                    let next = queues[q][heads[q]]
                    guard next == Block(pack: first.pack, offset: run.range.upperBound),
                          case .queued(urgency)? = status[next], let nextObjects = catalog.objects(in: next) else { break }
                    heads[q] += 1
                    status[next] = .inFlight
                    run.blocks.append(next)
                    run.range = run.range.lowerBound..<run.range.upperBound + UInt64(nextObjects.length)
                }
                return run
            }
            queues[q].removeAll(keepingCapacity: true)
            heads[q] = 0
        }
        return nil
    }

    private func damaged(_ pack: ObjectID, _ what: String) -> BuildFSError {
        .remote(location: endpoint.base, reason: "the server sent damaged bytes for pack \(pack.hex) (\(what)); not used")
    }

    private func missingAfterFetch(_ block: Block) -> BuildFSError {
        .remote(location: endpoint.base, reason: "block \(block.offset) of pack \(block.pack.hex) could not be kept")
    }

    /// Fetches a run, checks it, and caches it; returns the blocks cached,
    /// and whether the server sent the whole pack.
    private func fetchRun(_ run: Run) throws -> ([Block], Bool) {
        let url = endpoint.url(.cas, run.pack)
        let packSize = catalog.packSize(run.pack) ?? run.range.upperBound
        guard let (bytes, whole) = try transport.fetch(url, range: run.range, wholeLength: Int(packSize)) else {
            throw BuildFSError.remote(
                location: endpoint.base,
                reason: "pack \(run.pack.hex) is missing on the server (evicted?); the snapshot that needs it must be saved again")
        }
        if whole {
            guard ObjectID.hashing(bytes) == run.pack else { throw damaged(run.pack, "does not hash to its id") }
            // No Range support: keep every block of the pack that is needed.
            return (try keep(bytes[...], startingAt: 0, blocks: catalog.blocks(inPack: run.pack)), true)
        }
        return (try keep(bytes[...], startingAt: run.range.lowerBound, blocks: run.blocks), false)
    }

    /// Hands the needed `blocks` of `bytes` (which start at pack offset
    /// `start`) to the cache in one piece. Their objects are checked when
    /// read (ReadThroughCache.get), which is once: checking here too would
    /// decompress and hash everything twice.
    private func keep(_ bytes: ArraySlice<UInt8>, startingAt start: UInt64, blocks: [Block]) throws -> [Block] {
        var entries: [(ObjectID, PackSlot)] = []
        var low = UInt64.max, high: UInt64 = 0
        for block in blocks {
            guard let objects = catalog.objects(in: block) else { continue }
            guard block.offset >= start, Int(block.offset - start) + Int(objects.length) <= bytes.count else {
                throw BuildFSError.remote(location: endpoint.base, reason: "the server sent a short range of pack \(block.pack.hex)")
            }
            // A slot that disagrees on its block's length is left out (two
            // maps of different snapshots can only disagree if one lies).
            for (id, slot) in objects.objects where slot.blockLength == objects.length { entries.append((id, slot)) }
            low = min(low, block.offset)
            high = max(high, block.offset + UInt64(objects.length))
        }
        guard low < high else { return [] }
        for i in entries.indices { entries[i].1.blockOffset -= low }
        let from = Int(low - start) + bytes.startIndex
        cache.add(blocks: bytes[from..<from + Int(high - low)], entries: entries)
        return blocks
    }
}
