#ifndef BUILDFS_CIOURING_SHIM_H
#define BUILDFS_CIOURING_SHIM_H
// io_uring without liburing (not installed here): the raw system calls and
// the rings mapped by hand, just what FUSE over io_uring needs (KernelRing).
// Swift never touches an SQE or a CQE: these helpers fill and read them, so
// the ABI's unions and flexible arrays stay on the C side.
//
// Rings are always made with 128-byte SQEs (IORING_SETUP_SQE128): FUSE's
// command (struct fuse_uring_cmd_req) lives in the SQE's extra 80 bytes.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/io_uring.h>

// x86_64 numbers (the same on every architecture since 5.1, via asm-generic).
#define BUILDFS_SYS_IO_URING_SETUP 425
#define BUILDFS_SYS_IO_URING_ENTER 426
#ifdef __NR_io_uring_setup
_Static_assert(__NR_io_uring_setup == BUILDFS_SYS_IO_URING_SETUP, "io_uring_setup");
_Static_assert(__NR_io_uring_enter == BUILDFS_SYS_IO_URING_ENTER, "io_uring_enter");
#endif

#define BUILDFS_URING_SQE_SIZE 128
_Static_assert(sizeof(struct io_uring_sqe) * 2 == BUILDFS_URING_SQE_SIZE, "SQE128 doubles the SQE");
_Static_assert(offsetof(struct io_uring_sqe, cmd) == 48, "uring_cmd's command area");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "CQE without CQE32");

/// The flags KernelRing's rings are made with, besides SQE128: one thread
/// submits (SINGLE_ISSUER), and completions are run in that thread when it
/// waits (DEFER_TASKRUN) rather than by interrupting it.
static const unsigned BUILDFS_URING_SERVING_FLAGS = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;

/// One io_uring, mapped: pointers into the kernel's shared rings.
struct buildfs_uring {
    int fd;
    unsigned entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    unsigned char *sqes;
    /// SQEs handed out by buildfs_uring_prepare_command, published at the next submit.
    unsigned sqe_tail;
    void *rings;
    size_t rings_size;
    size_t sqes_size;
};

/// Makes a ring of `entries` SQEs (128 bytes each) with `flags` added:
/// 0, or -errno (ENOSYS: no io_uring; EPERM: kernel.io_uring_disabled).
static inline int buildfs_uring_setup(struct buildfs_uring *ring, unsigned entries, unsigned flags) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    memset(ring, 0, sizeof *ring);
    ring->fd = -1;
    params.flags = flags | IORING_SETUP_SQE128;
    int fd = (int)syscall(BUILDFS_SYS_IO_URING_SETUP, entries, &params);
    if (fd < 0) return -errno;
    // Every kernel with FUSE over io_uring maps both rings at once.
    if (!(params.features & IORING_FEAT_SINGLE_MMAP)) {
        close(fd);
        return -EOPNOTSUPP;
    }
    size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    size_t rings_size = sq_size > cq_size ? sq_size : cq_size;
    void *rings = mmap(NULL, rings_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (rings == MAP_FAILED) {
        int code = errno;
        close(fd);
        return -code;
    }
    size_t sqes_size = (size_t)params.sq_entries * BUILDFS_URING_SQE_SIZE;
    void *sqes = mmap(NULL, sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
        int code = errno;
        munmap(rings, rings_size);
        close(fd);
        return -code;
    }
    unsigned char *base = rings;
    ring->fd = fd;
    ring->entries = params.sq_entries;
    ring->sq_head = (unsigned *)(base + params.sq_off.head);
    ring->sq_tail = (unsigned *)(base + params.sq_off.tail);
    ring->sq_mask = (unsigned *)(base + params.sq_off.ring_mask);
    ring->sq_array = (unsigned *)(base + params.sq_off.array);
    ring->cq_head = (unsigned *)(base + params.cq_off.head);
    ring->cq_tail = (unsigned *)(base + params.cq_off.tail);
    ring->cq_mask = (unsigned *)(base + params.cq_off.ring_mask);
    ring->cqes = (struct io_uring_cqe *)(base + params.cq_off.cqes);
    ring->sqes = sqes;
    ring->sqe_tail = *ring->sq_tail;
    ring->rings = rings;
    ring->rings_size = rings_size;
    ring->sqes_size = sqes_size;
    return 0;
}

/// Unmaps and closes the ring: the kernel cancels what is still pending.
static inline void buildfs_uring_close(struct buildfs_uring *ring) {
    if (ring->fd < 0) return;
    munmap(ring->sqes, ring->sqes_size);
    munmap(ring->rings, ring->rings_size);
    close(ring->fd);
    ring->fd = -1;
}

/// Queues an IORING_OP_URING_CMD on `fd` (submitted by the next
/// buildfs_uring_submit_and_wait): `cmd_op`, `command_size` bytes of
/// command (at most 80), `addr`/`len` as the command reads them, and
/// `user_data` to find it by at completion. 0, or -EBUSY when the
/// submission queue is full.
static inline int buildfs_uring_prepare_command(struct buildfs_uring *ring, int fd, uint32_t cmd_op,
                                                const void *command, unsigned command_size,
                                                const void *addr, uint32_t len, uint64_t user_data) {
    unsigned head = __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    if (ring->sqe_tail - head >= ring->entries) return -EBUSY;
    if (command_size > BUILDFS_URING_SQE_SIZE - offsetof(struct io_uring_sqe, cmd)) return -EINVAL;
    unsigned index = ring->sqe_tail & *ring->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(ring->sqes + (size_t)index * BUILDFS_URING_SQE_SIZE);
    memset(sqe, 0, BUILDFS_URING_SQE_SIZE);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd;
    sqe->cmd_op = cmd_op;
    sqe->addr = (uint64_t)(uintptr_t)addr;
    sqe->len = len;
    sqe->user_data = user_data;
    memcpy(sqe->cmd, command, command_size);
    ring->sq_array[index] = index;
    ring->sqe_tail++;
    return 0;
}

/// Submits what was prepared and waits until `wait_for` completions are
/// there (0: does not wait, but still runs deferred completions). The
/// number submitted, or -errno (EINTR: a signal came while waiting).
static inline int buildfs_uring_submit_and_wait(struct buildfs_uring *ring, unsigned wait_for) {
    __atomic_store_n(ring->sq_tail, ring->sqe_tail, __ATOMIC_RELEASE);
    unsigned to_submit = ring->sqe_tail - __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    int result = (int)syscall(BUILDFS_SYS_IO_URING_ENTER, ring->fd, to_submit, wait_for, IORING_ENTER_GETEVENTS,
                              NULL, (size_t)0);
    return result < 0 ? -errno : result;
}

/// Takes the oldest completion: 1 and its user_data and result, or 0 when
/// there is none.
static inline int buildfs_uring_next_completion(struct buildfs_uring *ring, uint64_t *user_data, int32_t *result) {
    unsigned head = *ring->cq_head;
    if (head == __atomic_load_n(ring->cq_tail, __ATOMIC_ACQUIRE)) return 0;
    struct io_uring_cqe *cqe = &ring->cqes[head & *ring->cq_mask];
    *user_data = cqe->user_data;
    *result = cqe->res;
    __atomic_store_n(ring->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

#endif
