#ifndef BUILDFS_CFUSE3_SHIM_H
#define BUILDFS_CFUSE3_SHIM_H
// 312 keeps fuse_session_loop_mt and fuse_parse_cmdline real functions that
// Swift can call (at 34 they are function-like macros). Every libfuse entry
// point the daemon uses goes through a wrapper here, so that a libfuse that
// turns one into a macro (3.17 does with fuse_session_new) breaks only here.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <string.h>

static inline struct fuse_session *buildfs_session_new(struct fuse_args *args,
                                                       const struct fuse_lowlevel_ops *ops,
                                                       void *userdata) {
    return fuse_session_new(args, ops, sizeof(*ops), userdata);
}

static inline int buildfs_session_loop_mt(struct fuse_session *se, unsigned int max_idle_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_idle_threads(config, max_idle_threads);
    int rc = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return rc;
}

/// Replies to a read with `size` bytes of `fd` at `offset`, spliced from the
/// file to the kernel when the kernel allows it (no copy through userspace).
static inline int buildfs_reply_fd_data(fuse_req_t req, int fd, off_t offset, size_t size) {
    struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    buf.buf[0].flags = (enum fuse_buf_flags)(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd;
    buf.buf[0].pos = offset;
    return fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static inline struct fuse_args buildfs_args_init(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}

#endif
