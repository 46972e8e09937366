/*
 * qemu-hspt test helper, loaded with LD_PRELOAD: makes anonymous
 * read-write MAP_NORESERVE mmap() calls of exactly HSPT_FAIL_MMAP_SIZE
 * bytes fail with ENOMEM once HSPT_FAIL_MMAP_AFTER of them succeeded
 * (the shadow bookkeeping of a space; see hspt_space_alloc()). Other
 * calls, and all calls without those variables, go through unchanged.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);

/* QEMU is built with _FILE_OFFSET_BITS=64: its calls bind to mmap64. */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap64(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static mmap_fn *real_mmap;
    static long size = -1, allowed;
    const int match = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

    if (!real_mmap) {
        real_mmap = (mmap_fn *)dlsym(RTLD_NEXT, "mmap64");
    }
    if (size < 0) {
        const char *s = getenv("HSPT_FAIL_MMAP_SIZE");
        const char *a = getenv("HSPT_FAIL_MMAP_AFTER");

        size = s ? atol(s) : 0;
        allowed = a ? atol(a) : 0;
    }
    if (size && (long)len == size && !addr &&
        prot == (PROT_READ | PROT_WRITE) && flags == match) {
        if (__atomic_fetch_sub(&allowed, 1, __ATOMIC_SEQ_CST) <= 0) {
            errno = ENOMEM;
            return MAP_FAILED;
        }
    }
    return real_mmap(addr, len, prot, flags, fd, off);
}
