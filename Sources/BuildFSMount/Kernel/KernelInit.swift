import CFuseKernel
import Glibc

/// What the daemon asks for in the INIT handshake, and the handshake
/// itself: the daemon gets the features it wants that the kernel offers,
/// nothing else, and the limits below.
struct KernelInit: Sendable {
    /// Features the daemon would use. INIT_EXT and MAX_PAGES need not be
    /// listed: they are protocol mechanics, taken whenever offered.
    var wanted: KernelFeatures
    /// Largest WRITE the kernel sends (the receive buffers are sized for it).
    var maxWrite: UInt32 = 1 << 20
    /// Read-ahead in bytes; the kernel caps it at the device's read-ahead.
    var maxReadahead: UInt32 = .max
    /// Background requests (read-ahead, async direct I/O) the kernel keeps
    /// in flight: 0 leaves the kernel's default (12), as libfuse does.
    var maxBackground: UInt16 = 0
    /// Background requests past which writers wait: 0 is three quarters
    /// of `maxBackground`, as libfuse does.
    var congestionThreshold: UInt16 = 0
    /// Timestamp granularity in nanoseconds.
    var timeGranularity: UInt32 = 1
    /// How many stacked file systems may sit under a passthrough file
    /// (the kernel refuses 0): 1 keeps the mount usable under overlayfs.
    var maxStackDepth: UInt32 = 1

    /// The oldest kernel protocol served: 7.31 (Linux 5.9-ish) has every
    /// structure at its present size except the extended INIT.
    static let oldestMinor: UInt32 = 31

    /// The outcome of one INIT request.
    enum Outcome {
        /// Reply `reply`; the session is live with `connection`.
        case accepted(KernelConnection, reply: buildfs_fuse_init_out)
        /// The kernel speaks a newer major version: reply `reply` (our
        /// version only) and expect another INIT in ours.
        case newerMajor(reply: buildfs_fuse_init_out)
        /// Reply `error` (the kernel then fails every request); `reason`
        /// is for the log.
        case refused(error: Int32, reason: String)
    }

    func negotiate(_ request: KernelRequest) -> Outcome {
        guard let offer = request.body(as: buildfs_fuse_init_in.self) else {
            return .refused(error: EINVAL, reason: "INIT shorter than fuse_init_in (\(request.arguments.count) bytes)")
        }
        var reply = buildfs_fuse_init_out()
        reply.major = UInt32(BUILDFS_FUSE_KERNEL_VERSION)
        reply.minor = UInt32(BUILDFS_FUSE_KERNEL_MINOR_VERSION)
        if offer.major > reply.major { return .newerMajor(reply: reply) }
        guard offer.major == reply.major, offer.minor >= Self.oldestMinor else {
            return .refused(error: EPROTO, reason: "the kernel speaks FUSE \(offer.major).\(offer.minor); "
                                                  + "buildfs needs 7.\(Self.oldestMinor) or newer")
        }
        var offered = KernelFeatures(rawValue: UInt64(offer.flags))
        if offered.contains(.initExtended) { offered.formUnion(KernelFeatures(rawValue: UInt64(offer.flags2) << 32)) }

        var granted = wanted.intersection(offered)
        granted.formUnion(offered.intersection([.initExtended, .maxPages]))
        // The kernel turns passthrough off when the writeback cache is on:
        // say so here rather than report a feature the mount does not have.
        if granted.contains(.writebackCache) { granted.remove(.passthrough) }

        let pageSize = UInt32(sysconf(Int32(_SC_PAGESIZE)))
        let maxPages = granted.contains(.maxPages) ? UInt16(clamping: (maxWrite - 1) / pageSize + 1) : 0
        reply.flags = UInt32(truncatingIfNeeded: granted.rawValue)
        // flags2 is read only with INIT_EXT; without it the bits above 31
        // were never offered, so there is nothing to lose.
        reply.flags2 = UInt32(truncatingIfNeeded: granted.rawValue >> 32)
        // Not capped by the offer (the device's read-ahead at mount time):
        // the kernel keeps the smaller of this and the device's read-ahead
        // when it takes the reply, which KernelReadAhead may have raised.
        reply.max_readahead = maxReadahead
        reply.max_write = maxWrite
        reply.max_pages = maxPages
        reply.time_gran = timeGranularity
        reply.max_background = maxBackground
        reply.congestion_threshold = congestionThreshold != 0 ? min(congestionThreshold, maxBackground)
                                                              : UInt16(Int(maxBackground) * 3 / 4)
        if granted.contains(.passthrough) { reply.max_stack_depth = maxStackDepth }

        let connection = KernelConnection(kernelMinor: offer.minor, offered: offered, granted: granted,
                                          maxWrite: maxWrite, maxReadahead: reply.max_readahead, maxPages: maxPages)
        return .accepted(connection, reply: reply)
    }
}

/// A live session's terms, as INIT settled them.
struct KernelConnection: Sendable, Equatable {
    /// The kernel's protocol minor version (7.x).
    var kernelMinor: UInt32
    /// Everything the kernel offered.
    var offered: KernelFeatures
    /// What the daemon took: the requests it gets and the replies it may
    /// send depend on this (SETXATTR_EXT changes SETXATTR's layout).
    var granted: KernelFeatures
    var maxWrite: UInt32
    var maxReadahead: UInt32
    var maxPages: UInt16

    /// The daemon's one log line about the session.
    var summary: String {
        "FUSE 7.\(kernelMinor), max_write \(maxWrite), max_readahead \(maxReadahead); granted: \(granted)"
    }
}
