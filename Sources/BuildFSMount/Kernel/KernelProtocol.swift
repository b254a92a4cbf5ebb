import CFuseKernel

/// The requests of the FUSE kernel protocol (7.45), by fuse_in_header.opcode.
/// `KernelRequest.opcode` is nil for a number not listed here.
enum KernelOpcode: UInt32, Sendable {
    case lookup = 1
    case forget = 2  // no reply
    case getattr = 3
    case setattr = 4
    case readlink = 5
    case symlink = 6
    case mknod = 8
    case mkdir = 9
    case unlink = 10
    case rmdir = 11
    case rename = 12
    case link = 13
    case open = 14
    case read = 15
    case write = 16
    case statfs = 17
    case release = 18
    case fsync = 20
    case setxattr = 21
    case getxattr = 22
    case listxattr = 23
    case removexattr = 24
    case flush = 25
    case initialize = 26  // FUSE_INIT
    case opendir = 27
    case readdir = 28
    case releasedir = 29
    case fsyncdir = 30
    case getlk = 31
    case setlk = 32
    case setlkw = 33
    case access = 34
    case create = 35
    case interrupt = 36
    case bmap = 37
    case destroy = 38
    case ioctl = 39
    case poll = 40
    case notifyReply = 41
    case batchForget = 42  // no reply
    case fallocate = 43
    case readdirplus = 44
    case rename2 = 45
    case lseek = 46
    case copyFileRange = 47
    case setupMapping = 48
    case removeMapping = 49
    case syncfs = 50
    case tmpfile = 51
    case statx = 52
    case copyFileRange64 = 53
}

/// INIT flags: what the kernel offers in fuse_init_in and what the daemon
/// takes in fuse_init_out. Bits 32 and up travel in `flags2`, which counts
/// only when `initExtended` is set.
struct KernelFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    let rawValue: UInt64

    static let asyncRead = Self(rawValue: BUILDFS_FUSE_ASYNC_READ)
    static let posixLocks = Self(rawValue: BUILDFS_FUSE_POSIX_LOCKS)
    static let atomicOpenTruncate = Self(rawValue: BUILDFS_FUSE_ATOMIC_O_TRUNC)
    static let exportSupport = Self(rawValue: BUILDFS_FUSE_EXPORT_SUPPORT)
    static let bigWrites = Self(rawValue: BUILDFS_FUSE_BIG_WRITES)
    static let dontMask = Self(rawValue: BUILDFS_FUSE_DONT_MASK)
    static let spliceWrite = Self(rawValue: BUILDFS_FUSE_SPLICE_WRITE)
    static let spliceMove = Self(rawValue: BUILDFS_FUSE_SPLICE_MOVE)
    static let spliceRead = Self(rawValue: BUILDFS_FUSE_SPLICE_READ)
    static let flockLocks = Self(rawValue: BUILDFS_FUSE_FLOCK_LOCKS)
    static let ioctlOnDirectories = Self(rawValue: BUILDFS_FUSE_HAS_IOCTL_DIR)
    static let autoInvalidateData = Self(rawValue: BUILDFS_FUSE_AUTO_INVAL_DATA)
    static let readdirplus = Self(rawValue: BUILDFS_FUSE_DO_READDIRPLUS)
    static let readdirplusAuto = Self(rawValue: BUILDFS_FUSE_READDIRPLUS_AUTO)
    static let asyncDirectIO = Self(rawValue: BUILDFS_FUSE_ASYNC_DIO)
    static let writebackCache = Self(rawValue: BUILDFS_FUSE_WRITEBACK_CACHE)
    static let noOpenSupport = Self(rawValue: BUILDFS_FUSE_NO_OPEN_SUPPORT)
    static let parallelDirectoryOperations = Self(rawValue: BUILDFS_FUSE_PARALLEL_DIROPS)
    static let handleKillPriv = Self(rawValue: BUILDFS_FUSE_HANDLE_KILLPRIV)
    static let posixACL = Self(rawValue: BUILDFS_FUSE_POSIX_ACL)
    static let abortError = Self(rawValue: BUILDFS_FUSE_ABORT_ERROR)
    static let maxPages = Self(rawValue: BUILDFS_FUSE_MAX_PAGES)
    static let cacheSymlinks = Self(rawValue: BUILDFS_FUSE_CACHE_SYMLINKS)
    static let noOpendirSupport = Self(rawValue: BUILDFS_FUSE_NO_OPENDIR_SUPPORT)
    static let explicitInvalidateData = Self(rawValue: BUILDFS_FUSE_EXPLICIT_INVAL_DATA)
    static let mapAlignment = Self(rawValue: BUILDFS_FUSE_MAP_ALIGNMENT)
    static let submounts = Self(rawValue: BUILDFS_FUSE_SUBMOUNTS)
    static let handleKillPrivV2 = Self(rawValue: BUILDFS_FUSE_HANDLE_KILLPRIV_V2)
    static let setxattrExtended = Self(rawValue: BUILDFS_FUSE_SETXATTR_EXT)
    static let initExtended = Self(rawValue: BUILDFS_FUSE_INIT_EXT)
    static let securityContext = Self(rawValue: BUILDFS_FUSE_SECURITY_CTX)
    static let inodeDAX = Self(rawValue: BUILDFS_FUSE_HAS_INODE_DAX)
    static let createSupplementaryGroup = Self(rawValue: BUILDFS_FUSE_CREATE_SUPP_GROUP)
    static let expireOnly = Self(rawValue: BUILDFS_FUSE_HAS_EXPIRE_ONLY)
    static let directIOAllowMmap = Self(rawValue: BUILDFS_FUSE_DIRECT_IO_ALLOW_MMAP)
    static let passthrough = Self(rawValue: BUILDFS_FUSE_PASSTHROUGH)
    static let noExportSupport = Self(rawValue: BUILDFS_FUSE_NO_EXPORT_SUPPORT)
    static let resend = Self(rawValue: BUILDFS_FUSE_HAS_RESEND)
    static let allowIDMap = Self(rawValue: BUILDFS_FUSE_ALLOW_IDMAP)
    static let overIoUring = Self(rawValue: BUILDFS_FUSE_OVER_IO_URING)
    static let requestTimeout = Self(rawValue: BUILDFS_FUSE_REQUEST_TIMEOUT)

    /// Every named flag with its name, in bit order (for the log line).
    static let named: [(KernelFeatures, String)] = [
        (.asyncRead, "async_read"), (.posixLocks, "posix_locks"), (.atomicOpenTruncate, "atomic_o_trunc"),
        (.exportSupport, "export_support"), (.bigWrites, "big_writes"), (.dontMask, "dont_mask"),
        (.spliceWrite, "splice_write"), (.spliceMove, "splice_move"), (.spliceRead, "splice_read"),
        (.flockLocks, "flock_locks"), (.ioctlOnDirectories, "ioctl_dir"), (.autoInvalidateData, "auto_inval_data"),
        (.readdirplus, "readdirplus"), (.readdirplusAuto, "readdirplus_auto"), (.asyncDirectIO, "async_dio"),
        (.writebackCache, "writeback_cache"), (.noOpenSupport, "no_open_support"),
        (.parallelDirectoryOperations, "parallel_dirops"), (.handleKillPriv, "handle_killpriv"),
        (.posixACL, "posix_acl"), (.abortError, "abort_error"), (.maxPages, "max_pages"),
        (.cacheSymlinks, "cache_symlinks"), (.noOpendirSupport, "no_opendir_support"),
        (.explicitInvalidateData, "explicit_inval_data"), (.mapAlignment, "map_alignment"),
        (.submounts, "submounts"), (.handleKillPrivV2, "handle_killpriv_v2"), (.setxattrExtended, "setxattr_ext"),
        (.initExtended, "init_ext"), (.securityContext, "security_ctx"), (.inodeDAX, "inode_dax"),
        (.createSupplementaryGroup, "create_supp_group"), (.expireOnly, "expire_only"),
        (.directIOAllowMmap, "direct_io_allow_mmap"), (.passthrough, "passthrough"),
        (.noExportSupport, "no_export_support"), (.resend, "resend"), (.allowIDMap, "allow_idmap"),
        (.overIoUring, "over_io_uring"), (.requestTimeout, "request_timeout"),
    ]

    /// The kernel's names of the flags set, unknown bits in hex.
    var description: String {
        var names = Self.named.filter { contains($0.0) }.map(\.1)
        let unknown = subtracting(Self.named.reduce(into: KernelFeatures()) { $0.formUnion($1.0) })
        if !unknown.isEmpty { names.append("0x" + String(unknown.rawValue, radix: 16)) }
        return names.isEmpty ? "none" : names.joined(separator: " ")
    }
}
