/*
 * hspt-wl: deterministic guest workloads for host-side page table tests
 *
 * All workloads print only deterministic data on stdout (name, parameters,
 * checksums) so that runs under different kernels, accelerator settings and
 * -smp values can be compared byte for byte.  Anything that may vary
 * (timings, pids, diagnostics) goes to stderr.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HSPT_WL_H
#define HSPT_WL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A workload gets bench == false for SIZE=test, true for SIZE=bench. */
typedef int (*wl_fn)(bool bench);

typedef struct workload {
    const char *name;
    wl_fn fn;
    const char *desc;
} workload;

int wl_seqrw(bool bench);
int wl_chase(bool bench);
int wl_compute(bool bench);
int wl_forkstorm(bool bench);
int wl_pipering(bool bench);
int wl_mmapchurn(bool bench);
int wl_cow(bool bench);
int wl_smc(bool bench);
int wl_unaligned(bool bench);
int wl_alignfix(bool bench);
int wl_atomics(bool bench);
int wl_kaddr(bool bench);
int wl_devmem(bool bench);
int wl_pagecache(bool bench);

/* PRNGs: fixed seeds only, never time or pid based. */
static inline uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline uint32_t rotl32(uint32_t v, unsigned n)
{
    return (v << (n & 31)) | (v >> ((32 - n) & 31));
}

/* 32-bit FNV-1a */
#define FNV_INIT  0x811c9dc5u
#define FNV_PRIME 0x01000193u

static inline uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * FNV_PRIME;
    }
    return h;
}

/*
 * FNV-1a style hash that consumes one 32-bit word per step (4x cheaper
 * than bytes on big buffers).  The xor-shift feeds high input bits into
 * the low output bits, which a bare multiply never does.
 */
static inline uint32_t hash_word(uint32_t h, uint32_t w)
{
    h = (h ^ w) * FNV_PRIME;
    return h ^ (h >> 16);
}

static inline uint32_t hash_words(uint32_t h, const uint32_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = hash_word(h, w[i]);
    }
    return h;
}

/*
 * Little-endian accesses one byte at a time through volatile, so the
 * compiler cannot merge them into wider (possibly unaligned) accesses.
 */
static inline uint64_t le_load_bytes(const volatile uint8_t *p, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static inline void le_store_bytes(volatile uint8_t *p, unsigned size,
                                  uint64_t v)
{
    for (unsigned i = 0; i < size; i++) {
        p[i] = v >> (8 * i);
    }
}

/* common.c */
const char *size_name(bool bench);
int wl_fail(const char *wl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void wl_die(const char *wl, const char *what) __attribute__((noreturn));
void *wl_mmap_anon(const char *wl, size_t len);
size_t read_full(int fd, void *buf, size_t len);
bool write_full(int fd, const void *buf, size_t len);
pid_t wl_fork(const char *wl);
int wl_status_code(int status);
void wl_status_str(int status, char *buf, size_t len);

#endif /* HSPT_WL_H */
