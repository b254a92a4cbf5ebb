import Glibc
import Synchronization

/// Appends each object id the mount reads for the first time to the upper
/// directory's read trace (ReadTrace), where a commit finds it. One small
/// O_APPEND write per object, not per read; losing the last ids to a crash
/// only makes the next prefetch order less exact.
final class ReadTraceRecorder: Sendable {
    private let fd: Int32
    private let seen = Mutex<Set<ObjectID>>([])

    /// Records into `upper`'s trace file; records nothing if it cannot be opened.
    init(upper: String) {
        let path = upper + "/" + UpperLayout.internalDirectory + "/" + ReadTrace.fileName
        fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    }

    deinit { if fd >= 0 { close(fd) } }

    func record(_ id: ObjectID) {
        guard fd >= 0, seen.withLock({ $0.count < ReadTrace.maxIDs && $0.insert(id).inserted }) else { return }
        _ = id.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
