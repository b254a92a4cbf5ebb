@testable import BuildFSMount
import Testing

/// Finding a mount's device in mountinfo, whose lines come from a kernel
/// but name paths anyone may have chosen.
@Suite("Kernel read-ahead")
struct KernelReadAheadTests {
    let mountinfo = """
        22 1 0:21 / /proc rw,nosuid - proc proc rw
        98 22 0:40 / /work/with\\040space rw,nosuid - fuse buildfs rw,user_id=0
        99 22 0:41 / /work/plain rw - tmpfs tmpfs rw
        100 22 0:42 / /work/plain rw,nosuid - fuse.buildfs buildfs rw,user_id=0
        101 22 0:43 / /work/plain rw,nosuid - fuse.other other rw
        102 22 0:44/../../x / /work/evil rw - fuse buildfs rw
        103 22 0:45 / /work/short
        """

    @Test func findsTheLastFuseMountAtThePath() {
        #expect(KernelReadAhead.device(of: "/work/with space", mountinfo: mountinfo) == "0:40")
        // The later FUSE mount on top wins; tmpfs is not FUSE.
        #expect(KernelReadAhead.device(of: "/work/plain", mountinfo: mountinfo) == "0:43")
    }

    @Test func refusesWhatIsNotADeviceNumber() {
        #expect(KernelReadAhead.device(of: "/work/evil", mountinfo: mountinfo) == nil)
        #expect(KernelReadAhead.device(of: "/work/short", mountinfo: mountinfo) == nil)
        #expect(KernelReadAhead.device(of: "/work/none", mountinfo: mountinfo) == nil)
        #expect(KernelReadAhead.device(of: "/work/plain", mountinfo: nil) == nil)
    }
}
