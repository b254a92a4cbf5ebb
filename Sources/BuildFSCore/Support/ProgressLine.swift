import Foundation
import Glibc
import Synchronization

/// A status line on stderr, redrawn a few times a second while long work
/// runs, and only when stderr is a terminal (logs stay clean).
public final class ProgressLine: Sendable {
    private let render: @Sendable () -> String
    private let enabled: Bool
    private let running = Atomic<Bool>(false)
    private let finished = Mutex<Bool>(false)

    /// `enabled` false (tests, or stderr not a terminal) draws nothing.
    public init(enabled: Bool = ProgressLine.stderrIsTerminal, _ render: @escaping @Sendable () -> String) {
        self.render = render
        self.enabled = enabled
    }

    public static var stderrIsTerminal: Bool { isatty(2) == 1 }

    public func start() {
        guard enabled else { return }
        running.store(true, ordering: .relaxed)
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: 0.25)
                if running.load(ordering: .relaxed) { write("\r\u{1B}[K" + render()) }
            }
            finished.withLock { $0 = true }
        }
        thread.start()
    }

    /// Stops redrawing and erases the line.
    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        while !finished.withLock({ $0 }) { usleep(10_000) }
        write("\r\u{1B}[K")
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
