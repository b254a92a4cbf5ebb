#ifndef BUILDFS_FUSE_KERNEL_H
#define BUILDFS_FUSE_KERNEL_H
// The FUSE kernel protocol at 7.45 (Linux 6.18), declared here with a
// buildfs_ prefix: /usr/include/linux/fuse.h on Debian 12 stops at 7.38, and
// including it next to libfuse's own copy would clash. Layouts follow the
// kernel's include/uapi/linux/fuse.h; every struct size is checked below.
// Only what the daemon's own request loop reads or writes is declared.
// Opcodes are in Swift (KernelOpcode): a C enum would not import as a Swift
// enum that refuses unknown values.
#include <stdint.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define BUILDFS_FUSE_KERNEL_VERSION 7
#define BUILDFS_FUSE_KERNEL_MINOR_VERSION 45
#define BUILDFS_FUSE_ROOT_ID 1

// ---- INIT flags (fuse_init_in/out.flags; bits 32..63 travel in flags2,
// ---- and only when FUSE_INIT_EXT is set on both sides)
#define BUILDFS_FUSE_ASYNC_READ           (1ULL << 0)
#define BUILDFS_FUSE_POSIX_LOCKS          (1ULL << 1)
#define BUILDFS_FUSE_ATOMIC_O_TRUNC       (1ULL << 3)
#define BUILDFS_FUSE_EXPORT_SUPPORT       (1ULL << 4)
#define BUILDFS_FUSE_BIG_WRITES           (1ULL << 5)
#define BUILDFS_FUSE_DONT_MASK            (1ULL << 6)
#define BUILDFS_FUSE_SPLICE_WRITE         (1ULL << 7)
#define BUILDFS_FUSE_SPLICE_MOVE          (1ULL << 8)
#define BUILDFS_FUSE_SPLICE_READ          (1ULL << 9)
#define BUILDFS_FUSE_FLOCK_LOCKS          (1ULL << 10)
#define BUILDFS_FUSE_HAS_IOCTL_DIR        (1ULL << 11)
#define BUILDFS_FUSE_AUTO_INVAL_DATA      (1ULL << 12)
#define BUILDFS_FUSE_DO_READDIRPLUS       (1ULL << 13)
#define BUILDFS_FUSE_READDIRPLUS_AUTO     (1ULL << 14)
#define BUILDFS_FUSE_ASYNC_DIO            (1ULL << 15)
#define BUILDFS_FUSE_WRITEBACK_CACHE      (1ULL << 16)
#define BUILDFS_FUSE_NO_OPEN_SUPPORT      (1ULL << 17)
#define BUILDFS_FUSE_PARALLEL_DIROPS      (1ULL << 18)
#define BUILDFS_FUSE_HANDLE_KILLPRIV      (1ULL << 19)
#define BUILDFS_FUSE_POSIX_ACL            (1ULL << 20)
#define BUILDFS_FUSE_ABORT_ERROR          (1ULL << 21)
#define BUILDFS_FUSE_MAX_PAGES            (1ULL << 22)
#define BUILDFS_FUSE_CACHE_SYMLINKS       (1ULL << 23)
#define BUILDFS_FUSE_NO_OPENDIR_SUPPORT   (1ULL << 24)
#define BUILDFS_FUSE_EXPLICIT_INVAL_DATA  (1ULL << 25)
#define BUILDFS_FUSE_MAP_ALIGNMENT        (1ULL << 26)
#define BUILDFS_FUSE_SUBMOUNTS            (1ULL << 27)
#define BUILDFS_FUSE_HANDLE_KILLPRIV_V2   (1ULL << 28)
#define BUILDFS_FUSE_SETXATTR_EXT         (1ULL << 29)
#define BUILDFS_FUSE_INIT_EXT             (1ULL << 30)
#define BUILDFS_FUSE_SECURITY_CTX         (1ULL << 32)
#define BUILDFS_FUSE_HAS_INODE_DAX        (1ULL << 33)
#define BUILDFS_FUSE_CREATE_SUPP_GROUP    (1ULL << 34)
#define BUILDFS_FUSE_HAS_EXPIRE_ONLY      (1ULL << 35)
#define BUILDFS_FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#define BUILDFS_FUSE_PASSTHROUGH          (1ULL << 37)
#define BUILDFS_FUSE_NO_EXPORT_SUPPORT    (1ULL << 38)
#define BUILDFS_FUSE_HAS_RESEND           (1ULL << 39)
#define BUILDFS_FUSE_ALLOW_IDMAP          (1ULL << 40)
#define BUILDFS_FUSE_OVER_IO_URING        (1ULL << 41)
#define BUILDFS_FUSE_REQUEST_TIMEOUT      (1ULL << 42)

// ---- fuse_open_out.open_flags
#define BUILDFS_FOPEN_DIRECT_IO              (1U << 0)
#define BUILDFS_FOPEN_KEEP_CACHE             (1U << 1)
#define BUILDFS_FOPEN_NONSEEKABLE            (1U << 2)
#define BUILDFS_FOPEN_CACHE_DIR              (1U << 3)
#define BUILDFS_FOPEN_STREAM                 (1U << 4)
#define BUILDFS_FOPEN_NOFLUSH                (1U << 5)
#define BUILDFS_FOPEN_PARALLEL_DIRECT_WRITES (1U << 6)
#define BUILDFS_FOPEN_PASSTHROUGH            (1U << 7)

// ---- fuse_setattr_in.valid
#define BUILDFS_FATTR_MODE         (1U << 0)
#define BUILDFS_FATTR_UID          (1U << 1)
#define BUILDFS_FATTR_GID          (1U << 2)
#define BUILDFS_FATTR_SIZE         (1U << 3)
#define BUILDFS_FATTR_ATIME        (1U << 4)
#define BUILDFS_FATTR_MTIME        (1U << 5)
#define BUILDFS_FATTR_FH           (1U << 6)
#define BUILDFS_FATTR_ATIME_NOW    (1U << 7)
#define BUILDFS_FATTR_MTIME_NOW    (1U << 8)
#define BUILDFS_FATTR_LOCKOWNER    (1U << 9)
#define BUILDFS_FATTR_CTIME        (1U << 10)
#define BUILDFS_FATTR_KILL_SUIDGID (1U << 11)

// ---- Other request flags
#define BUILDFS_FUSE_GETATTR_FH          (1U << 0)  // fuse_getattr_in.getattr_flags
#define BUILDFS_FUSE_WRITE_CACHE         (1U << 0)  // fuse_write_in.write_flags
#define BUILDFS_FUSE_WRITE_LOCKOWNER     (1U << 1)
#define BUILDFS_FUSE_WRITE_KILL_SUIDGID  (1U << 2)
#define BUILDFS_FUSE_OPEN_KILL_SUIDGID   (1U << 0)  // fuse_open_in/create_in.open_flags
#define BUILDFS_FUSE_SETXATTR_ACL_KILL_SGID (1U << 0) // fuse_setxattr_in.setxattr_flags
#define BUILDFS_FUSE_RELEASE_FLUSH       (1U << 0)  // fuse_release_in.release_flags
#define BUILDFS_FUSE_FSYNC_FDATASYNC     (1U << 0)  // fuse_fsync_in.fsync_flags
// Set in fuse_in_header.unique when the kernel resends a request (HAS_RESEND).
#define BUILDFS_FUSE_UNIQUE_RESEND       (1ULL << 63)

// ---- Headers
struct buildfs_fuse_in_header {
    uint32_t len;           // the whole request, header and extensions included
    uint32_t opcode;
    uint64_t unique;
    uint64_t nodeid;
    uint32_t uid;
    uint32_t gid;
    uint32_t pid;
    uint16_t total_extlen;  // extensions at the end of the request, in 8-byte units
    uint16_t padding;
};

struct buildfs_fuse_out_header {
    uint32_t len;           // the whole reply, this header included
    int32_t error;          // 0 or a negative errno
    uint64_t unique;
};

// Extensions after a request's arguments (SECURITY_CTX, CREATE_SUPP_GROUP).
struct buildfs_fuse_ext_header {
    uint32_t size;          // this extension, header included
    uint32_t type;
};

// ---- Attributes and entries
struct buildfs_fuse_attr {
    uint64_t ino;
    uint64_t size;
    uint64_t blocks;
    uint64_t atime;
    uint64_t mtime;
    uint64_t ctime;
    uint32_t atimensec;
    uint32_t mtimensec;
    uint32_t ctimensec;
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint32_t rdev;
    uint32_t blksize;
    uint32_t flags;
};

struct buildfs_fuse_entry_out {
    uint64_t nodeid;
    uint64_t generation;
    uint64_t entry_valid;   // seconds the kernel may cache the name
    uint64_t attr_valid;    // seconds the kernel may cache the attributes
    uint32_t entry_valid_nsec;
    uint32_t attr_valid_nsec;
    struct buildfs_fuse_attr attr;
};

struct buildfs_fuse_attr_out {
    uint64_t attr_valid;
    uint32_t attr_valid_nsec;
    uint32_t dummy;
    struct buildfs_fuse_attr attr;
};

struct buildfs_fuse_getattr_in {
    uint32_t getattr_flags;
    uint32_t dummy;
    uint64_t fh;
};

struct buildfs_fuse_setattr_in {
    uint32_t valid;         // FATTR_* bits
    uint32_t padding;
    uint64_t fh;
    uint64_t size;
    uint64_t lock_owner;
    uint64_t atime;
    uint64_t mtime;
    uint64_t ctime;
    uint32_t atimensec;
    uint32_t mtimensec;
    uint32_t ctimensec;
    uint32_t mode;
    uint32_t unused4;
    uint32_t uid;
    uint32_t gid;
    uint32_t unused5;
};

// ---- Lookups' lifetime
struct buildfs_fuse_forget_in { uint64_t nlookup; };
struct buildfs_fuse_forget_one { uint64_t nodeid; uint64_t nlookup; };
struct buildfs_fuse_batch_forget_in { uint32_t count; uint32_t dummy; };  // then count forget_one
struct buildfs_fuse_interrupt_in { uint64_t unique; };

// ---- Namespace (each followed by the NUL-terminated name(s))
struct buildfs_fuse_mknod_in { uint32_t mode; uint32_t rdev; uint32_t umask; uint32_t padding; };
struct buildfs_fuse_mkdir_in { uint32_t mode; uint32_t umask; };
struct buildfs_fuse_rename_in { uint64_t newdir; };
struct buildfs_fuse_rename2_in { uint64_t newdir; uint32_t flags; uint32_t padding; };
struct buildfs_fuse_link_in { uint64_t oldnodeid; };
struct buildfs_fuse_create_in { uint32_t flags; uint32_t mode; uint32_t umask; uint32_t open_flags; };

// ---- Files
struct buildfs_fuse_open_in { uint32_t flags; uint32_t open_flags; };
struct buildfs_fuse_open_out {
    uint64_t fh;
    uint32_t open_flags;    // FOPEN_* bits
    int32_t backing_id;     // with FOPEN_PASSTHROUGH: from FUSE_DEV_IOC_BACKING_OPEN
};
struct buildfs_fuse_read_in {
    uint64_t fh;
    uint64_t offset;
    uint32_t size;
    uint32_t read_flags;
    uint64_t lock_owner;
    uint32_t flags;
    uint32_t padding;
};
struct buildfs_fuse_write_in {      // followed by `size` bytes of data
    uint64_t fh;
    uint64_t offset;
    uint32_t size;
    uint32_t write_flags;   // FUSE_WRITE_* bits
    uint64_t lock_owner;
    uint32_t flags;
    uint32_t padding;
};
struct buildfs_fuse_write_out { uint32_t size; uint32_t padding; };
struct buildfs_fuse_release_in { uint64_t fh; uint32_t flags; uint32_t release_flags; uint64_t lock_owner; };
struct buildfs_fuse_flush_in { uint64_t fh; uint32_t unused; uint32_t padding; uint64_t lock_owner; };
struct buildfs_fuse_fsync_in { uint64_t fh; uint32_t fsync_flags; uint32_t padding; };
struct buildfs_fuse_fallocate_in { uint64_t fh; uint64_t offset; uint64_t length; uint32_t mode; uint32_t padding; };
struct buildfs_fuse_access_in { uint32_t mask; uint32_t padding; };

// ---- Extended attributes
// SETXATTR: 16 bytes once SETXATTR_EXT is granted, else only the first 8
// (FUSE_COMPAT_SETXATTR_IN_SIZE); followed by the name and `size` value bytes.
struct buildfs_fuse_setxattr_in { uint32_t size; uint32_t flags; uint32_t setxattr_flags; uint32_t padding; };
#define BUILDFS_FUSE_COMPAT_SETXATTR_IN_SIZE 8
struct buildfs_fuse_getxattr_in { uint32_t size; uint32_t padding; };  // GETXATTR (+ name) and LISTXATTR
struct buildfs_fuse_getxattr_out { uint32_t size; uint32_t padding; };  // the reply when size was 0

// ---- File system
struct buildfs_fuse_kstatfs {
    uint64_t blocks;
    uint64_t bfree;
    uint64_t bavail;
    uint64_t files;
    uint64_t ffree;
    uint32_t bsize;
    uint32_t namelen;
    uint32_t frsize;
    uint32_t padding;
    uint32_t spare[6];
};
struct buildfs_fuse_statfs_out { struct buildfs_fuse_kstatfs st; };

// ---- Directories: records padded to 8 bytes, the name right after
struct buildfs_fuse_dirent {
    uint64_t ino;
    uint64_t off;           // the offset of the next entry
    uint32_t namelen;
    uint32_t type;          // DT_* (mode >> 12)
    // char name[namelen], then zero padding to a multiple of 8
};
struct buildfs_fuse_direntplus {
    struct buildfs_fuse_entry_out entry_out;
    struct buildfs_fuse_dirent dirent;
};

// ---- INIT
struct buildfs_fuse_init_in {
    uint32_t major;
    uint32_t minor;
    uint32_t max_readahead;
    uint32_t flags;
    uint32_t flags2;        // INIT flags >> 32, valid with FUSE_INIT_EXT
    uint32_t unused[11];
};
struct buildfs_fuse_init_out {
    uint32_t major;
    uint32_t minor;
    uint32_t max_readahead;
    uint32_t flags;
    uint16_t max_background;
    uint16_t congestion_threshold;
    uint32_t max_write;
    uint32_t time_gran;
    uint16_t max_pages;
    uint16_t map_alignment;
    uint32_t flags2;
    uint32_t max_stack_depth;   // with PASSTHROUGH: 1..FILESYSTEM_MAX_STACK_DEPTH
    uint16_t request_timeout;
    uint16_t unused[11];
};

// ---- Passthrough backing files
struct buildfs_fuse_backing_map { int32_t fd; uint32_t flags; uint64_t padding; };

// ---- Notifications (daemon to kernel: out header with unique 0 and the
// code in `error`)
#define BUILDFS_FUSE_NOTIFY_INVAL_INODE 2
// off < 0: the attributes only; else also the cached pages of [off, off+len).
struct buildfs_fuse_notify_inval_inode_out { uint64_t ino; int64_t off; int64_t len; };
#define BUILDFS_FUSE_NOTIFY_STORE 4
// Followed by `size` bytes: they become the cached pages of [offset, offset+size).
struct buildfs_fuse_notify_store_out { uint64_t nodeid; uint64_t offset; uint32_t size; uint32_t padding; };

// ---- Sizes at 7.45 (the kernel checks them byte for byte)
_Static_assert(sizeof(struct buildfs_fuse_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct buildfs_fuse_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct buildfs_fuse_ext_header) == 8, "fuse_ext_header");
_Static_assert(sizeof(struct buildfs_fuse_attr) == 88, "fuse_attr");
_Static_assert(sizeof(struct buildfs_fuse_entry_out) == 128, "fuse_entry_out");
_Static_assert(sizeof(struct buildfs_fuse_attr_out) == 104, "fuse_attr_out");
_Static_assert(sizeof(struct buildfs_fuse_getattr_in) == 16, "fuse_getattr_in");
_Static_assert(sizeof(struct buildfs_fuse_setattr_in) == 88, "fuse_setattr_in");
_Static_assert(sizeof(struct buildfs_fuse_forget_in) == 8, "fuse_forget_in");
_Static_assert(sizeof(struct buildfs_fuse_forget_one) == 16, "fuse_forget_one");
_Static_assert(sizeof(struct buildfs_fuse_batch_forget_in) == 8, "fuse_batch_forget_in");
_Static_assert(sizeof(struct buildfs_fuse_interrupt_in) == 8, "fuse_interrupt_in");
_Static_assert(sizeof(struct buildfs_fuse_mknod_in) == 16, "fuse_mknod_in");
_Static_assert(sizeof(struct buildfs_fuse_mkdir_in) == 8, "fuse_mkdir_in");
_Static_assert(sizeof(struct buildfs_fuse_rename_in) == 8, "fuse_rename_in");
_Static_assert(sizeof(struct buildfs_fuse_rename2_in) == 16, "fuse_rename2_in");
_Static_assert(sizeof(struct buildfs_fuse_link_in) == 8, "fuse_link_in");
_Static_assert(sizeof(struct buildfs_fuse_create_in) == 16, "fuse_create_in");
_Static_assert(sizeof(struct buildfs_fuse_open_in) == 8, "fuse_open_in");
_Static_assert(sizeof(struct buildfs_fuse_open_out) == 16, "fuse_open_out");
_Static_assert(offsetof(struct buildfs_fuse_open_out, backing_id) == 12, "backing_id");
_Static_assert(sizeof(struct buildfs_fuse_read_in) == 40, "fuse_read_in");
_Static_assert(sizeof(struct buildfs_fuse_write_in) == 40, "fuse_write_in");
_Static_assert(sizeof(struct buildfs_fuse_write_out) == 8, "fuse_write_out");
_Static_assert(sizeof(struct buildfs_fuse_release_in) == 24, "fuse_release_in");
_Static_assert(sizeof(struct buildfs_fuse_flush_in) == 24, "fuse_flush_in");
_Static_assert(sizeof(struct buildfs_fuse_fsync_in) == 16, "fuse_fsync_in");
_Static_assert(sizeof(struct buildfs_fuse_fallocate_in) == 32, "fuse_fallocate_in");
_Static_assert(sizeof(struct buildfs_fuse_access_in) == 8, "fuse_access_in");
_Static_assert(sizeof(struct buildfs_fuse_setxattr_in) == 16, "fuse_setxattr_in");
_Static_assert(sizeof(struct buildfs_fuse_getxattr_in) == 8, "fuse_getxattr_in");
_Static_assert(sizeof(struct buildfs_fuse_getxattr_out) == 8, "fuse_getxattr_out");
_Static_assert(sizeof(struct buildfs_fuse_kstatfs) == 80, "fuse_kstatfs");
_Static_assert(sizeof(struct buildfs_fuse_statfs_out) == 80, "fuse_statfs_out");
_Static_assert(sizeof(struct buildfs_fuse_dirent) == 24, "fuse_dirent (without its name)");
_Static_assert(sizeof(struct buildfs_fuse_direntplus) == 152, "fuse_direntplus (without its name)");
_Static_assert(sizeof(struct buildfs_fuse_init_in) == 64, "fuse_init_in");
_Static_assert(offsetof(struct buildfs_fuse_init_in, flags2) == 16, "init_in.flags2");
_Static_assert(sizeof(struct buildfs_fuse_init_out) == 64, "fuse_init_out");
_Static_assert(offsetof(struct buildfs_fuse_init_out, flags2) == 32, "init_out.flags2");
_Static_assert(offsetof(struct buildfs_fuse_init_out, max_stack_depth) == 36, "init_out.max_stack_depth");
_Static_assert(offsetof(struct buildfs_fuse_init_out, request_timeout) == 40, "init_out.request_timeout");
_Static_assert(sizeof(struct buildfs_fuse_backing_map) == 16, "fuse_backing_map");
_Static_assert(sizeof(struct buildfs_fuse_notify_inval_inode_out) == 24, "fuse_notify_inval_inode_out");
_Static_assert(sizeof(struct buildfs_fuse_notify_store_out) == 24, "fuse_notify_store_out");

// ---- FUSE over io_uring (7.42; FUSE_OVER_IO_URING): KernelRing
// The commands (sqe->cmd_op of an IORING_OP_URING_CMD on /dev/fuse).
#define BUILDFS_FUSE_IO_URING_CMD_REGISTER         1  // give the kernel an entry to fill
#define BUILDFS_FUSE_IO_URING_CMD_COMMIT_AND_FETCH 2  // reply, and take the entry back for the next request
#define BUILDFS_FUSE_URING_IN_OUT_HEADER_SZ 128
#define BUILDFS_FUSE_URING_OP_IN_OUT_SZ 128

// The kernel's bookkeeping of one entry, after the two header areas.
struct buildfs_fuse_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;     // what COMMIT_AND_FETCH names the request by (its unique)
    uint32_t payload_sz;    // bytes in the payload: the request's other arguments, then the reply's
    uint32_t padding;
    uint64_t reserved;
};

// An entry's header buffer (iovec 0 at REGISTER; iovec 1 is the payload).
struct buildfs_fuse_uring_req_header {
    char in_out[BUILDFS_FUSE_URING_IN_OUT_HEADER_SZ];  // fuse_in_header in, fuse_out_header out
    char op_in[BUILDFS_FUSE_URING_OP_IN_OUT_SZ];       // the request's first argument (its fixed struct)
    struct buildfs_fuse_uring_ent_in_out ring_ent_in_out;
};

// The command in the SQE's extra 80 bytes (IORING_SETUP_SQE128).
struct buildfs_fuse_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;     // COMMIT_AND_FETCH: the request replied to
    uint16_t qid;           // the queue: a CPU number
    uint8_t padding[6];
};

_Static_assert(sizeof(struct buildfs_fuse_uring_ent_in_out) == 32, "fuse_uring_ent_in_out");
_Static_assert(sizeof(struct buildfs_fuse_uring_req_header) == 288, "fuse_uring_req_header");
_Static_assert(offsetof(struct buildfs_fuse_uring_req_header, op_in) == 128, "fuse_uring_req_header.op_in");
_Static_assert(offsetof(struct buildfs_fuse_uring_req_header, ring_ent_in_out) == 256,
               "fuse_uring_req_header.ring_ent_in_out");
_Static_assert(sizeof(struct buildfs_fuse_uring_cmd_req) == 24, "fuse_uring_cmd_req");
_Static_assert(offsetof(struct buildfs_fuse_uring_cmd_req, qid) == 16, "fuse_uring_cmd_req.qid");

// ---- /dev/fuse ioctls (_IOR/_IOW(229, n, ...)); ioctl is variadic, so
// ---- Swift reaches it through these wrappers.
#define BUILDFS_FUSE_DEV_IOC_CLONE         0x8004e500UL  // _IOR(229, 0, uint32_t)
#define BUILDFS_FUSE_DEV_IOC_BACKING_OPEN  0x4010e501UL  // _IOW(229, 1, struct fuse_backing_map)
#define BUILDFS_FUSE_DEV_IOC_BACKING_CLOSE 0x4004e502UL  // _IOW(229, 2, uint32_t)
_Static_assert(BUILDFS_FUSE_DEV_IOC_CLONE == _IOR(229, 0, uint32_t), "FUSE_DEV_IOC_CLONE");
_Static_assert(BUILDFS_FUSE_DEV_IOC_BACKING_OPEN == _IOW(229, 1, struct buildfs_fuse_backing_map),
               "FUSE_DEV_IOC_BACKING_OPEN");
_Static_assert(BUILDFS_FUSE_DEV_IOC_BACKING_CLOSE == _IOW(229, 2, uint32_t), "FUSE_DEV_IOC_BACKING_CLOSE");

/// Binds `clone_fd` (a fresh open of /dev/fuse) to the session of `session_fd`.
static inline int buildfs_fuse_dev_clone(int clone_fd, int session_fd) {
    uint32_t master = (uint32_t)session_fd;
    return ioctl(clone_fd, BUILDFS_FUSE_DEV_IOC_CLONE, &master);
}

/// Registers `fd` as a passthrough backing file: its id (> 0), or -1 and errno.
static inline int buildfs_fuse_backing_open(int session_fd, int fd) {
    struct buildfs_fuse_backing_map map = { .fd = fd, .flags = 0, .padding = 0 };
    return ioctl(session_fd, BUILDFS_FUSE_DEV_IOC_BACKING_OPEN, &map);
}

static inline int buildfs_fuse_backing_close(int session_fd, int32_t backing_id) {
    uint32_t id = (uint32_t)backing_id;
    return ioctl(session_fd, BUILDFS_FUSE_DEV_IOC_BACKING_CLOSE, &id);
}

// ---- Linux calls the channel splices replies with, hidden from Swift
// ---- without _GNU_SOURCE (which must stay off: see CLinuxCalls).
#define BUILDFS_SPLICE_F_NONBLOCK 2
#define BUILDFS_F_SETPIPE_SZ 1031
#define BUILDFS_F_GETPIPE_SZ 1032

static inline ssize_t buildfs_splice(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out,
                                     size_t len, unsigned int flags) {
    return (ssize_t)syscall(SYS_splice, fd_in, off_in, fd_out, off_out, len, flags);
}

/// A pipe whose ends are close-on-exec and never block (a full or empty
/// pipe is an error the caller recovers from, not a wait).
static inline int buildfs_pipe_cloexec_nonblocking(int fds[2]) {
    return (int)syscall(SYS_pipe2, fds, 02000000 /* O_CLOEXEC */ | 04000 /* O_NONBLOCK */);
}

static inline int buildfs_pipe_size(int fd) { return (int)syscall(SYS_fcntl, fd, BUILDFS_F_GETPIPE_SZ, 0); }
static inline int buildfs_set_pipe_size(int fd, int size) {
    return (int)syscall(SYS_fcntl, fd, BUILDFS_F_SETPIPE_SZ, size);
}

#endif
