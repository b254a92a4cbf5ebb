import Glibc

/// A system call that failed: which call, on what, and errno. The one error
/// type for a failed call, in the commands (which print `description` as
/// their one line) and in the daemon (which replies `code` to the kernel,
/// and whose refusals name the request they refuse: a getxattr of one of
/// our own attributes is `SystemCallError("getxattr", code: ENODATA)`).
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    public var call: String
    /// What it was called on; "" in the daemon, where that is an inode.
    public var path: String
    public var code: Int32

    /// `code` defaults to the current errno: build it right after the call.
    public init(_ call: String, _ path: String = "", code: Int32 = errno) {
        self.call = call
        self.path = path
        self.code = code
    }

    public var description: String {
        let subject = path.isEmpty ? call : "\(call) \(path)"
        let base = "\(subject): \(String(cString: strerror(code)))"
        switch code {
        case EACCES, EPERM, EROFS:
            return base + " (check permissions, or pick another place with --store / BUILDFS_STORE)"
        case ENOSPC, EDQUOT:
            return "disk full: \(base); what was being written is not used (free space or run `buildfs gc --max-size ...`)"
        default:
            return base
        }
    }
}

/// Runs one system call: retries it while a signal interrupts it (EINTR is
/// retried here and nowhere else) and turns -1 into a SystemCallError
/// naming the call and `path` (built only on failure). Not for close(2),
/// which must never be retried on Linux.
@inline(__always)
@discardableResult
public func sys<R: FixedWidthInteger & SignedInteger>(_ call: StaticString, _ path: @autoclosure () -> String = "",
                                                      _ body: () -> R) throws(SystemCallError) -> R {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code != EINTR { throw SystemCallError(call.description, path(), code: code) }
    }
}

/// A failure buildfs reports as one line: BuildFSError or SystemCallError.
/// Code that turns a failure into a message or a damaged-item entry
/// catches this, not one of the two.
public protocol ReportableError: Error, CustomStringConvertible {}
extension BuildFSError: ReportableError {}
extension SystemCallError: ReportableError {}
