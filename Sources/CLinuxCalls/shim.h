#ifndef BUILDFS_CLINUXCALLS_SHIM_H
#define BUILDFS_CLINUXCALLS_SHIM_H
// Linux calls and constants that Swift's Glibc module does not show without
// _GNU_SOURCE (which must not be defined here: the module would then
// disagree with SwiftGlibc about system structs). Variadic syscall() needs
// a wrapper too.
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/vfs.h>
#include <string.h>

#define BUILDFS_O_PATH 010000000
#define BUILDFS_AT_EMPTY_PATH 0x1000
#define BUILDFS_RENAME_NOREPLACE (1 << 0)
#define BUILDFS_RENAME_EXCHANGE (1 << 1)
static const long BUILDFS_UTIME_NOW = (1l << 30) - 1l;
static const long BUILDFS_UTIME_OMIT = (1l << 30) - 2l;

/// Flushes every dirty page of the file system holding `fd`: one call makes
/// all objects written before it durable.
static inline int buildfs_syncfs(int fd) { return (int)syscall(SYS_syncfs, fd); }

/// The statfs f_type (file system magic number) of the file system holding
/// `fd`, or 0 when it cannot be read.
static inline long buildfs_file_system_magic(int fd) {
    struct statfs info;
    return fstatfs(fd, &info) == 0 ? (long)info.f_type : 0;
}

/// A descriptor that refers to process `pid` and becomes readable (POLLIN)
/// when it exits, zombie or not; -1 with errno ESRCH when it is gone and
/// ENOSYS before Linux 5.3.
static inline int buildfs_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static inline int buildfs_renameat2(int olddirfd, const char *oldpath, int newdirfd,
                                    const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

/// Per-thread file system ids (the raw syscalls are per thread; glibc's
/// wrappers would be too, but are hidden without _GNU_SOURCE).
static inline int buildfs_setfsuid(uid_t uid) { return (int)syscall(SYS_setfsuid, uid); }
static inline int buildfs_setfsgid(gid_t gid) { return (int)syscall(SYS_setfsgid, gid); }

/// Supplementary groups of this thread only (glibc's setgroups() would
/// change every thread of the process).
static inline int buildfs_setgroups(size_t size, const gid_t *list) {
    return (int)syscall(SYS_setgroups, size, list);
}

/// A file handle (struct file_handle with room for MAX_HANDLE_SZ bytes).
struct buildfs_file_handle {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[128];
};

/// The handle of the file open as `fd` (any kind of descriptor, O_PATH too).
static inline int buildfs_handle_of(int fd, struct buildfs_file_handle *handle) {
    int mount_id;
    handle->handle_bytes = sizeof(handle->f_handle);
    return (int)syscall(SYS_name_to_handle_at, fd, "", handle, &mount_id, BUILDFS_AT_EMPTY_PATH);
}

/// Opens a file by its handle; `mount_fd` is any descriptor on its file system.
static inline int buildfs_open_by_handle(int mount_fd, struct buildfs_file_handle *handle, int flags) {
    return (int)syscall(SYS_open_by_handle_at, mount_fd, handle, flags);
}

#include <pthread.h>
// glibc exports it; its declaration needs _GNU_SOURCE, which must stay off.
extern int pthread_rwlockattr_setkind_np(pthread_rwlockattr_t *attr, int pref);

/// A read-write lock where a waiting writer goes before new readers (the
/// daemon's requests would otherwise starve the rare writer forever).
static inline int buildfs_rwlock_init_writer_first(pthread_rwlock_t *lock) {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, 2 /* PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP */);
    int rc = pthread_rwlock_init(lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return rc;
}

static inline int buildfs_fallocate(int fd, int mode, off_t offset, off_t length) {
    return (int)syscall(SYS_fallocate, fd, mode, offset, length);
}

/// Keeps the calling thread on CPU `cpu` only (sched_setaffinity of this
/// thread; pthread_setaffinity_np and the CPU_SET macros need _GNU_SOURCE).
static inline int buildfs_pin_thread_to_cpu(int cpu) {
    unsigned long mask[1024 / (8 * sizeof(unsigned long))];
    const int bits = (int)(8 * sizeof(unsigned long));
    if (cpu < 0 || cpu >= 1024) {
        errno = EINVAL;
        return -1;
    }
    memset(mask, 0, sizeof mask);
    mask[cpu / bits] = 1UL << (cpu % bits);
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof mask, mask);
}

#endif
