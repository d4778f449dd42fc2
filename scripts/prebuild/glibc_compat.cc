// Linked into the Linux prebuilds only (scripts/prebuild/build.mjs).
// Before glibc 2.33, lstat() was not a libc export: programs got it from
// libc_nonshared.a as a call to __lxstat(). Zig 0.11's replacement for it,
// when targeting glibc 2.28, returns failure without setting errno, so
// ENOENT/ENOTDIR could not be told apart (getActiveState said
// invalid-path). This defines lstat() as glibc's own wrapper does.
#include <sys/stat.h>

extern "C" {
int __lxstat(int version, const char* path, struct stat* buf);

#if defined(__x86_64__)
#define SIPC_STAT_VER 1  // _STAT_VER_LINUX on x86-64
#else
#define SIPC_STAT_VER 0  // _STAT_VER on aarch64 (generic ABI)
#endif

int lstat(const char* path, struct stat* buf) { return __lxstat(SIPC_STAT_VER, path, buf); }
}
