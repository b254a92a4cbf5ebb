#ifndef BUILDFS_CFUSE3_SHIM_H
#define BUILDFS_CFUSE3_SHIM_H
// 312 keeps fuse_session_loop_mt and fuse_parse_cmdline real functions that
// Swift can call (at 34 they are function-like macros). See SWIFT-LIBFUSE-NOTES.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#endif
