import Synchronization

/// Reuses expensive per-thread objects (zstd contexts, read buffers) across
/// the worker threads of a parallel job without thread-local storage.
public final class ContextPool<Context: AnyObject & Sendable>: Sendable {
    private let free = Mutex<[Context]>([])
    private let made = Mutex<[Context]>([])
    private let make: @Sendable () -> Context

    public init(_ make: @escaping @Sendable () -> Context) { self.make = make }

    /// Every context made so far, whether in use or not.
    public var all: [Context] { made.withLock { $0 } }

    public func with<R>(_ body: (Context) throws -> R) rethrows -> R {
        let context = free.withLock { $0.popLast() } ?? {
            let new = make()
            made.withLock { $0.append(new) }
            return new
        }()
        defer { free.withLock { $0.append(context) } }
        return try body(context)
    }
}
