@testable import BuildFSCore
import Glibc
import Testing

/// The syscall funnel: EINTR retried there, failures named.
@Suite struct SystemCallTests {
    @Test func interruptedCallsAreRetriedAndOthersThrowNamed() throws {
        var calls = 0
        let result = try sys("fake") { () -> Int32 in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 7
        }
        #expect(result == 7 && calls == 3)

        let failure = #expect(throws: SystemCallError.self) {
            try sys("open", "/nonexistent/x") { open("/nonexistent/x", O_RDONLY) }
        }
        #expect(failure == SystemCallError("open", "/nonexistent/x", code: ENOENT))
        #expect(failure?.description == "open /nonexistent/x: No such file or directory")
    }

    @Test func messagesSayWhatToDo() {
        #expect(SystemCallError("write", "/s/packs/x", code: ENOSPC).description.hasPrefix("disk full: write /s/packs/x"))
        #expect(SystemCallError("mkdir", "/s", code: EACCES).description.contains("check permissions"))
        // In the daemon the subject is the request, not a path.
        #expect(SystemCallError("getxattr", code: ENODATA).description == "getxattr: No data available")
    }
}
