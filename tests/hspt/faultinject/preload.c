/*
 * qemu-hspt test helper, loaded into QEMU with LD_PRELOAD, to make the
 * host misbehave in ways a test cannot arrange otherwise:
 *
 * HSPT_FAIL_MMAP_SIZE=N, HSPT_FAIL_MMAP_AFTER=K: anonymous read-write
 *   MAP_NORESERVE mmap() calls of exactly N bytes fail with ENOMEM once K
 *   of them succeeded (the shadow bookkeeping of a space; see
 *   hspt_space_alloc()).
 * HSPT_FAIL_RESERVE_AFTER=K: MAP_FIXED mmap() calls that replace a range
 *   with an inaccessible anonymous MAP_NORESERVE reservation (a shadow
 *   unmap; see hspt_reserve()) fail with ENOMEM once K of them succeeded,
 *   leaving the old mapping in place.
 * HSPT_FAIL_RESERVE_WHILE=PATH: the same reservations fail while PATH
 *   exists (a test creates it at the moment it wants failures).
 * HSPT_FAKE_MAX_MAP_COUNT=TEXT: g_file_get_contents() of
 *   /proc/sys/vm/max_map_count returns TEXT (the VMA budget).
 * HSPT_NO_FSGSBASE=1: getauxval(AT_HWCAP2) leaves out HWCAP2_FSGSBASE, as
 *   on a host kernel without wrgsbase for user space (before Linux 5.9),
 *   so generated code loads the slot bases from thread-local storage.
 * HSPT_FAIL_ARCH_PRCTL=1: syscall(SYS_arch_prctl, ARCH_SET_GS, ...) fails
 *   with EPERM (as under a seccomp filter that denies it).
 *
 * Without those variables every call goes through unchanged.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);
/* glib's, without its headers: gboolean is int, gsize size_t */
typedef int get_contents_fn(const char *, char **, size_t *, void **);
typedef unsigned long getauxval_fn(unsigned long);
typedef long syscall_fn(long, ...);

/* QEMU is built with _FILE_OFFSET_BITS=64: its calls bind to mmap64. */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap64(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static mmap_fn *real_mmap;
    static long size = -1, allowed;
    static long reserves_allowed;
    static int reserves_limited;
    static const char *fail_while;
    const int match = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

    if (!real_mmap) {
        real_mmap = (mmap_fn *)dlsym(RTLD_NEXT, "mmap64");
    }
    if (size < 0) {
        const char *s = getenv("HSPT_FAIL_MMAP_SIZE");
        const char *a = getenv("HSPT_FAIL_MMAP_AFTER");
        const char *r = getenv("HSPT_FAIL_RESERVE_AFTER");

        size = s ? atol(s) : 0;
        allowed = a ? atol(a) : 0;
        reserves_limited = r != NULL;
        reserves_allowed = r ? atol(r) : 0;
        fail_while = getenv("HSPT_FAIL_RESERVE_WHILE");
    }
    if (addr && prot == PROT_NONE && flags == (match | MAP_FIXED) &&
        fd == -1 &&
        ((reserves_limited &&
          __atomic_fetch_sub(&reserves_allowed, 1, __ATOMIC_SEQ_CST) <= 0) ||
         (fail_while && access(fail_while, F_OK) == 0))) {
        errno = ENOMEM;
        return MAP_FAILED;
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

int g_file_get_contents(const char *filename, char **contents,
                        size_t *length, void **error)
{
    static get_contents_fn *real_get_contents;
    const char *fake = getenv("HSPT_FAKE_MAX_MAP_COUNT");

    if (fake && !strcmp(filename, "/proc/sys/vm/max_map_count")) {
        /* g_free() is free() since glib 2.46 */
        *contents = strdup(fake);
        if (length) {
            *length = strlen(fake);
        }
        return 1;
    }
    if (!real_get_contents) {
        real_get_contents = (get_contents_fn *)dlsym(RTLD_NEXT,
                                                     "g_file_get_contents");
    }
    return real_get_contents(filename, contents, length, error);
}

unsigned long getauxval(unsigned long type)
{
    static getauxval_fn *real_getauxval;
    unsigned long val;

    if (!real_getauxval) {
        real_getauxval = (getauxval_fn *)dlsym(RTLD_NEXT, "getauxval");
    }
    val = real_getauxval(type);
    if (type == AT_HWCAP2 && getenv("HSPT_NO_FSGSBASE")) {
        val &= ~(unsigned long)HWCAP2_FSGSBASE;
    }
    return val;
}

/* Every caller in QEMU passes at most six arguments. */
long syscall(long number, ...)
{
    static syscall_fn *real_syscall;
    long a[6];
    va_list ap;

    va_start(ap, number);
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    if (number == SYS_arch_prctl && a[0] == ARCH_SET_GS &&
        getenv("HSPT_FAIL_ARCH_PRCTL")) {
        errno = EPERM;
        return -1;
    }
    if (!real_syscall) {
        real_syscall = (syscall_fn *)dlsym(RTLD_NEXT, "syscall");
    }
    return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
