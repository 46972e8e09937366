/*
 * hspt-wl: single-process memory workloads
 * (seqrw, chase, compute, mmapchurn, unaligned)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* MAP_ANONYMOUS, strsignal() etc. also under a strict -std */
#define _GNU_SOURCE

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hspt-wl.h"

#define MiB (1024u * 1024u)

/*
 * seqrw: in every 16-word block, words 0..13 get a word RMW and the last
 * 8 bytes get byte RMWs, so each pass mixes ldr/str with ldrb/strb.
 * Odd passes sweep backwards.
 */

static inline uint32_t seqrw_init(uint32_t i)
{
    return (i * 0x9e3779b9u) ^ 0x5bd1e995u;
}

static inline uint32_t seqrw_word_op(uint32_t v, uint32_t i, uint32_t pass)
{
    return rotl32(v, 7) + (i ^ pass);
}

static inline uint8_t seqrw_byte_op(uint8_t b, uint32_t k, uint32_t pass)
{
    return (uint8_t)(b * 3u + pass + k);
}

static inline void seqrw_block(uint32_t *w, uint32_t i, uint32_t pass)
{
    uint8_t *b = (uint8_t *)&w[i + 14];

    for (uint32_t j = 0; j < 14; j++) {
        w[i + j] = seqrw_word_op(w[i + j], i + j, pass);
    }
    for (uint32_t k = 0; k < 8; k++) {
        b[k] = seqrw_byte_op(b[k], k, pass);
    }
}

/* Value of word i after the given passes, computed without memory. */
static uint32_t seqrw_model(uint32_t i, uint32_t passes)
{
    uint32_t v = seqrw_init(i);
    uint32_t slot = i & 15;

    for (uint32_t p = 0; p < passes; p++) {
        if (slot < 14) {
            v = seqrw_word_op(v, i, p);
            continue;
        }
        for (uint32_t m = 0; m < 4; m++) {
            uint32_t sh = 8 * m;
            uint8_t b = seqrw_byte_op((v >> sh) & 0xff, (slot - 14) * 4 + m, p);

            v = (v & ~(0xffu << sh)) | ((uint32_t)b << sh);
        }
    }
    return v;
}

int wl_seqrw(bool bench)
{
    const size_t bytes = (bench ? 64 : 8) * MiB;
    const uint32_t passes = bench ? 16 : 4;
    /* Full model check at test size; a stride covering all slots at bench. */
    const uint32_t stride = bench ? 257 : 1;
    const uint32_t n = bytes / 4;
    uint32_t *w = wl_mmap_anon("seqrw", bytes);
    uint32_t sum = FNV_INIT;

    printf("seqrw: size=%s bytes=%zu passes=%u\n",
           size_name(bench), bytes, passes);

    for (uint32_t i = 0; i < n; i++) {
        w[i] = seqrw_init(i);
    }
    for (uint32_t p = 0; p < passes; p++) {
        if (p & 1) {
            for (uint32_t i = n; i > 0; i -= 16) {
                seqrw_block(w, i - 16, p);
            }
        } else {
            for (uint32_t i = 0; i < n; i += 16) {
                seqrw_block(w, i, p);
            }
        }
    }
    for (uint32_t i = 0; i < n; i += stride) {
        uint32_t want = seqrw_model(i, passes);

        if (w[i] != want) {
            return wl_fail("seqrw", "word %u is 0x%08x, expected 0x%08x",
                           i, w[i], want);
        }
    }
    sum = hash_words(sum, w, n);
    printf("seqrw: checksum=0x%08x\n", sum);
    munmap(w, bytes);
    return 0;
}

/*
 * chase: one random cycle (Sattolo's algorithm) through 64-byte nodes, so
 * every step is a dependent load to an unpredictable cache line and page.
 */

typedef struct chase_node {
    uint32_t next;
    uint32_t val;
    uint32_t pad[14];
} chase_node;

_Static_assert(sizeof(chase_node) == 64, "chase node must be a cache line");

int wl_chase(bool bench)
{
    const size_t bytes = (bench ? 48 : 4) * MiB;
    const uint32_t steps = bench ? 40000000 : 2000000;
    const uint32_t count = bytes / sizeof(chase_node);
    chase_node *nodes = wl_mmap_anon("chase", bytes);
    uint32_t seed = 0x6c078965, idx, sum, total, len, want_idx, want_sum;

    printf("chase: size=%s bytes=%zu nodes=%u steps=%u\n",
           size_name(bench), bytes, count, steps);

    for (uint32_t i = 0; i < count; i++) {
        nodes[i].next = i;
        nodes[i].val = xorshift32(&seed);
    }
    /* Sattolo: j < i strictly, which yields a single cycle. */
    for (uint32_t i = count - 1; i > 0; i--) {
        uint32_t j = xorshift32(&seed) % i;
        uint32_t t = nodes[i].next;

        nodes[i].next = nodes[j].next;
        nodes[j].next = t;
    }

    idx = 0;
    sum = 0;
    for (uint32_t s = 0; s < steps; s++) {
        idx = nodes[idx].next;
        sum += nodes[idx].val;
    }

    /* Check: the cycle covers all nodes, then derive the result from it. */
    total = 0;
    len = 0;
    want_idx = 0;
    do {
        want_idx = nodes[want_idx].next;
        total += nodes[want_idx].val;
        len++;
    } while (want_idx != 0 && len <= count);
    if (len != count) {
        return wl_fail("chase", "cycle length %u, expected %u", len, count);
    }
    want_sum = (steps / count) * total;
    for (uint32_t s = 0; s < steps % count; s++) {
        want_idx = nodes[want_idx].next;
        want_sum += nodes[want_idx].val;
    }
    if (idx != want_idx || sum != want_sum) {
        return wl_fail("chase", "walk ended at %u/0x%08x, expected %u/0x%08x",
                       idx, sum, want_idx, want_sum);
    }
    printf("chase: final-index=%u checksum=0x%08x\n", idx, sum);
    munmap(nodes, bytes);
    return 0;
}

/*
 * compute: a register-only loop as the control workload; the results
 * were computed offline (any correct 32-bit implementation gives them).
 */

static uint32_t __attribute__((noinline)) compute_kernel(uint32_t n)
{
    uint32_t a = 0x12345678, b = 0x9abcdef0, c = 0;

    for (uint32_t i = 0; i < n; i++) {
        a = a * 1664525u + 1013904223u;
        b ^= a >> 11;
        b = rotl32(b, 7);
        c += b ^ i;
    }
    return a ^ b ^ c;
}

#define COMPUTE_TEST_ITERS   20000000u
#define COMPUTE_BENCH_ITERS  400000000u
#define COMPUTE_TEST_RESULT  0x12d47e60u
#define COMPUTE_BENCH_RESULT 0xb2401433u

int wl_compute(bool bench)
{
    /* volatile so the iteration count is not a compile-time constant */
    volatile uint32_t iters = bench ? COMPUTE_BENCH_ITERS : COMPUTE_TEST_ITERS;
    const uint32_t want = bench ? COMPUTE_BENCH_RESULT : COMPUTE_TEST_RESULT;
    uint32_t n = iters;
    uint32_t r;

    printf("compute: size=%s iterations=%u\n", size_name(bench), n);
    r = compute_kernel(n);
    if (r != want) {
        return wl_fail("compute", "result 0x%08x, expected 0x%08x", r, want);
    }
    printf("compute: result=0x%08x\n", r);
    return 0;
}

/*
 * mmapchurn: short-lived anonymous mappings; every page must read as zero
 * before the first write and return the written value afterwards.
 */

/* A different word in each page, so not always offset 0. */
static inline uint32_t *churn_word(uint8_t *p, size_t psize, uint32_t it,
                                   uint32_t q)
{
    return (uint32_t *)(p + q * psize + (((it + q) * 68) & (psize - 4)));
}
int wl_mmapchurn(bool bench)
{
    const uint32_t iters = bench ? 10000 : 500;
    const size_t psize = sysconf(_SC_PAGESIZE);
    uint32_t seed = 0x1d872b41, sum = FNV_INIT, pages = 0;

    printf("mmapchurn: size=%s iterations=%u max-pages=64\n",
           size_name(bench), iters);

    for (uint32_t it = 0; it < iters; it++) {
        uint32_t k = 1 + xorshift32(&seed) % 64;
        uint32_t key = xorshift32(&seed);
        uint8_t *p = wl_mmap_anon("mmapchurn", k * psize);

        for (uint32_t q = 0; q < k; q++) {
            uint32_t *w = churn_word(p, psize, it, q);

            if (*w != 0) {
                return wl_fail("mmapchurn", "iteration %u page %u not zero",
                               it, q);
            }
            *w = key ^ (q * 0x9e3779b9u);
        }
        for (uint32_t q = 0; q < k; q++) {
            uint32_t *w = churn_word(p, psize, it, q);

            if (*w != (key ^ (q * 0x9e3779b9u))) {
                return wl_fail("mmapchurn", "iteration %u page %u read 0x%08x",
                               it, q, *w);
            }
            sum = hash_word(sum, *w);
        }
        if (munmap(p, k * psize) < 0) {
            wl_die("mmapchurn", "munmap");
        }
        pages += k;
    }
    printf("mmapchurn: pages=%u checksum=0x%08x\n", pages, sum);
    return 0;
}

/*
 * unaligned: packed-struct accesses, which GCC emits as plain ldrh/ldr/str
 * (and ldr pairs for 8 bytes) at unaligned addresses on armv7.  Checked
 * against volatile byte accesses.
 */

typedef struct __attribute__((packed)) una16 { uint16_t v; } una16;
typedef struct __attribute__((packed)) una32 { uint32_t v; } una32;
typedef struct __attribute__((packed)) una64 { uint64_t v; } una64;

#define UNA_PAGES 16

static uint64_t una_load(const uint8_t *p, unsigned size)
{
    switch (size) {
    case 2:
        return ((const una16 *)p)->v;
    case 4:
        return ((const una32 *)p)->v;
    default:
        return ((const una64 *)p)->v;
    }
}

static void una_store(uint8_t *p, unsigned size, uint64_t v)
{
    switch (size) {
    case 2:
        ((una16 *)p)->v = v;
        break;
    case 4:
        ((una32 *)p)->v = v;
        break;
    default:
        ((una64 *)p)->v = v;
        break;
    }
}

int wl_unaligned(bool bench)
{
    const uint32_t accesses = bench ? 30000000 : 1000000;
    const size_t psize = 4096;
    const size_t bytes = UNA_PAGES * psize;
    uint8_t *buf = wl_mmap_anon("unaligned", bytes);
    uint32_t seed = 0x3c6ef372, sum = FNV_INIT, crossing = 0;
    uint64_t seed64 = 0x9e3779b97f4a7c15ull;

    printf("unaligned: size=%s accesses=%u buffer=%zu\n",
           size_name(bench), accesses, bytes);

    for (size_t i = 0; i < bytes; i++) {
        buf[i] = xorshift32(&seed);
    }
    for (uint32_t i = 0; i < accesses; i++) {
        uint32_t r = xorshift32(&seed);
        unsigned size = 2u << (i % 3);
        size_t pos;
        uint64_t mask = size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
        uint64_t v, got, ref;

        if ((i & 7) == 7) {
            /* Straddle a page boundary (1..size-1 bytes on the next page). */
            size_t page = 1 + (r >> 8) % (UNA_PAGES - 1);
            pos = page * psize - 1 - (r & 0xff) % (size - 1);
            crossing++;
        } else {
            /* Cycle through every offset 0..7 within an 8-byte word. */
            pos = (((r >> 8) % (bytes - 16)) & ~(size_t)7) | (i & 7);
        }

        if (r & 1) {
            /* Unaligned store, check with bytes, then unaligned load. */
            v = xorshift64(&seed64) & mask;
            una_store(buf + pos, size, v);
            ref = le_load_bytes(buf + pos, size);
            got = una_load(buf + pos, size);
        } else {
            /* Load what is there, then modify it byte-wise and reload. */
            ref = le_load_bytes(buf + pos, size);
            got = una_load(buf + pos, size);
            if (got != ref) {
                return wl_fail("unaligned", "access %u: %u-byte load at "
                               "offset %zu: 0x%llx, bytes say 0x%llx", i,
                               size, pos, (unsigned long long)got,
                               (unsigned long long)ref);
            }
            v = (got * 0x2545f4914f6cdd1dull + r) & mask;
            le_store_bytes(buf + pos, size, v);
            ref = le_load_bytes(buf + pos, size);
            got = una_load(buf + pos, size);
        }
        if (ref != v || got != v) {
            return wl_fail("unaligned", "access %u: %u-byte at offset %zu: "
                           "wrote 0x%llx, load 0x%llx, bytes 0x%llx", i, size,
                           pos, (unsigned long long)v,
                           (unsigned long long)got, (unsigned long long)ref);
        }
        sum = hash_word(sum, (uint32_t)got ^ (uint32_t)(got >> 32));
    }
    sum = fnv1a(sum, buf, bytes);
    printf("unaligned: page-crossing=%u checksum=0x%08x\n", crossing, sum);
    munmap(buf, bytes);
    return 0;
}
