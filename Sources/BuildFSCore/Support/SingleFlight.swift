import Dispatch
import Synchronization

/// Runs one computation per key at a time: callers that ask for a key
/// already being computed wait for that result instead of starting their
/// own. A mount's threads reading neighbouring ranges of one file thus
/// fetch its chunk from the server, or decode it, once, not once per thread.
public final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private final class Flight: @unchecked Sendable {
        let done = DispatchGroup()
        /// Written once by the leader before `done` is left.
        var result: Result<Value, any Error>?
    }

    private let flights = Mutex<[Key: Flight]>([:])

    public init() {}

    public func run(_ key: Key, _ body: () throws -> Value) throws -> Value {
        let (flight, leads) = flights.withLock { flights -> (Flight, Bool) in
            if let running = flights[key] { return (running, false) }
            let flight = Flight()
            flight.done.enter()
            flights[key] = flight
            return (flight, true)
        }
        if !leads {
            flight.done.wait()
            return try flight.result!.get()
        }
        let result = Result { try body() }
        flight.result = result
        flights.withLock { _ = $0.removeValue(forKey: key) }
        flight.done.leave()
        return try result.get()
    }
}
