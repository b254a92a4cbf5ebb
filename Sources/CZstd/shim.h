#ifndef BUILDFS_CZSTD_SHIM_H
#define BUILDFS_CZSTD_SHIM_H
#define ZDICT_STATIC_LINKING_ONLY
#include <zstd.h>
#endif
