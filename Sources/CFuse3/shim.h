#ifndef BUILDFS_CFUSE3_SHIM_H
#define BUILDFS_CFUSE3_SHIM_H
// libfuse only mounts and unmounts (KernelMount): the daemon serves the
// kernel protocol itself. Every libfuse entry point it uses goes through a
// wrapper here where it could become a macro (3.17 turns fuse_session_new
// into one), so that such a libfuse breaks only here.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <string.h>

static inline struct fuse_session *buildfs_session_new(struct fuse_args *args,
                                                       const struct fuse_lowlevel_ops *ops,
                                                       void *userdata) {
    return fuse_session_new(args, ops, sizeof(*ops), userdata);
}

static inline struct fuse_args buildfs_args_init(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}

#endif
