#ifndef BUILDFS_CLINUXCALLS_SHIM_H
#define BUILDFS_CLINUXCALLS_SHIM_H
// Linux calls that Swift's Glibc module does not show without _GNU_SOURCE
// (which must not be defined here: the module would then disagree with
// SwiftGlibc about system structs). Variadic syscall() needs a wrapper too.
#include <unistd.h>
#include <sys/syscall.h>

/// Flushes every dirty page of the file system holding `fd`: one call makes
/// all objects written before it durable.
static inline int buildfs_syncfs(int fd) { return (int)syscall(SYS_syncfs, fd); }

#endif
