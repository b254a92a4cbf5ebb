import Foundation
import Glibc

/// The lock that keeps gc from removing objects a writer is about to
/// reference. Writers (import, commit) hold it shared from their first
/// "does the store have this?" until their ref is written; gc holds it
/// exclusive while it marks and sweeps. It is an flock on STORE/lock, so a
/// process that dies releases it: nobody waits on a dead process.
public final class StoreLock: Sendable {
    private let file: FileDescriptor

    private init(file: FileDescriptor) { self.file = file }

    deinit { flock(file.raw, LOCK_UN) }

    static func path(_ root: String) -> String { root + "/lock" }

    /// Waits for any gc to finish, then holds the lock shared.
    static func shared(_ root: String) throws -> StoreLock {
        let lock = StoreLock(file: try FileDescriptor.open(path(root), O_RDWR | O_CREAT, mode: 0o666))
        try sys("flock", path(root)) { flock(lock.file.raw, LOCK_SH) }
        return lock
    }

    /// Holds the lock alone, waiting up to `timeout` seconds for writers to
    /// finish (a hung writer must not hang gc forever either).
    static func exclusive(_ root: String, timeout: Double) throws -> StoreLock {
        let lock = StoreLock(file: try FileDescriptor.open(path(root), O_RDWR | O_CREAT, mode: 0o666))
        let deadline = Date().addingTimeInterval(timeout)
        while flock(lock.file.raw, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK else { throw SystemCallError("flock", path(root)) }
            if Date() > deadline {
                throw BuildFSError.storeUnusable(
                    path: root, reason: "imports or commits kept the store busy for \(Int(timeout)) s; retry later")
            }
            usleep(50_000)
        }
        return lock
    }
}
