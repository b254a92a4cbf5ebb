/// Mutations of valid encodings, for the decoder fuzz tests: what a torn
/// write, a flipped bit or a hostile store makes of good bytes.
public struct ByteMutator {
    public var random: SeededRandom

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    public mutating func below(_ bound: Int) -> Int { bound <= 0 ? 0 : Int(random.next() % UInt64(bound)) }

    /// One to three mutations of `bytes`.
    public mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        for _ in 0...below(3) { mutateOnce(&out) }
        return out
    }

    private mutating func mutateOnce(_ out: inout [UInt8]) {
        switch below(8) {
        case 0 where !out.isEmpty: // flip bits
            for _ in 0...below(4) { out[below(out.count)] ^= 1 << UInt8(below(8)) }
        case 1: // truncate
            out.removeLast(below(out.count + 1))
        case 2: // extend
            out += random.bytes(1 + below(64))
        case 3 where !out.isEmpty: // a boundary value
            out[below(out.count)] = [0, 1, 0x7F, 0x80, 0xFF][below(5)]
        case 4: // insert
            out.insert(contentsOf: random.bytes(1 + below(16)), at: below(out.count + 1))
        case 5 where !out.isEmpty: // delete a range
            let start = below(out.count)
            out.removeSubrange(start..<min(out.count, start + 1 + below(16)))
        case 6: // noise
            out = random.bytes(below(2 * out.count + 64))
        case 7 where !out.isEmpty: // repeat a range
            let start = below(out.count)
            let slice = Array(out[start..<min(out.count, start + 1 + below(64))])
            out.insert(contentsOf: slice, at: below(out.count + 1))
        default:
            out.append(UInt8(truncatingIfNeeded: random.next()))
        }
    }
}

/// Runs `body` on the valid encodings and then on mutations of them, until
/// `iterations` or `seconds` have passed, whichever comes first. `fixUp`
/// repairs what a mutation should not break every time (a checksum), so
/// that the decoder's later checks are reached too. Returns the runs made.
@discardableResult
public func fuzz(_ valid: [[UInt8]], seed: UInt64, iterations: Int = 20_000, seconds: Double = 2,
                 fixUp: (([UInt8]) -> [UInt8])? = nil, _ body: ([UInt8]) throws -> Void) rethrows -> Int {
    precondition(!valid.isEmpty)
    var mutator = ByteMutator(seed: seed)
    let clock = ContinuousClock()
    let deadline = clock.now + .milliseconds(Int(seconds * 1000))
    for bytes in valid { try body(bytes) }
    var runs = valid.count
    while runs < iterations && clock.now < deadline {
        var bytes = mutator.mutate(valid[mutator.below(valid.count)])
        if let fixUp, mutator.below(2) == 0 { bytes = fixUp(bytes) }
        try body(bytes)
        runs += 1
    }
    return runs
}
