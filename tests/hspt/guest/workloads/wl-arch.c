/*
 * hspt-wl: ARM specific workloads (smc, alignfix, devmem)
 *
 * alignfix and devmem need a real (emulated) ARM Linux kernel: user-mode
 * emulation has no alignment fixup and no /dev/mem.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* MAP_ANONYMOUS, strsignal() etc. also under a strict -std */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hspt-wl.h"

#if !defined(__arm__)
#error "hspt-wl targets 32-bit ARM"
#endif

/*
 * smc: A32 code written into an RWX page and called through a function
 * pointer.  The address is even, so BLX switches the Thumb caller to ARM
 * state and the routine's BX LR switches back.
 */

#define A32_MOV_R0(imm)  (0xe3a00000u | (imm))  /* mov r0, #imm8 */
#define A32_MOV_R1(imm)  (0xe3a01000u | (imm))  /* mov r1, #imm8 */
#define A32_ADD_R0(imm)  (0xe2800000u | (imm))  /* add r0, r0, #imm8 */
#define A32_SUBS_R1_1    0xe2511001u            /* subs r1, r1, #1 */
#define A32_BNE_BACK2    0x1afffffcu            /* bne to 2 insns back */
#define A32_BX_LR        0xe12fff1eu            /* bx lr */

/* Word offset of the loop routine: same page, different cache line. */
#define SMC_LOOP_OFF     16

typedef uint32_t (*smc_fn)(void);

static uint32_t smc_run(volatile uint32_t *code, size_t words)
{
    smc_fn fn = (smc_fn)(uintptr_t)code;

    __builtin___clear_cache((char *)code, (char *)(code + words));
    return fn();
}

int wl_smc(bool bench)
{
    const uint32_t rewrites = bench ? 50000 : 2000;
    const size_t psize = sysconf(_SC_PAGESIZE);
    volatile uint32_t *code, *loop;
    uint32_t seed = 0x0badc0de, h = FNV_INIT;
    uint64_t sum = 0;

    printf("smc: size=%s rewrites=%u\n", size_name(bench), rewrites);

    code = mmap(NULL, psize, PROT_READ | PROT_WRITE | PROT_EXEC,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        wl_die("smc", "mmap rwx");
    }
    loop = code + SMC_LOOP_OFF;
    code[1] = A32_BX_LR;

    for (uint32_t i = 0; i < rewrites; i++) {
        uint32_t r = xorshift32(&seed);
        uint32_t got, want;

        if (!(i & 1)) {
            /* Patch only the immediate of an already executed routine. */
            want = r & 0xff;
            code[0] = A32_MOV_R0(want);
            got = smc_run(code, 2);
        } else {
            /* Regenerate the whole loop routine: r0 = n * k. */
            uint32_t n = 1 + r % 255, k = (r >> 8) & 0xff;

            loop[0] = A32_MOV_R0(0);
            loop[1] = A32_MOV_R1(n);
            loop[2] = A32_ADD_R0(k);
            loop[3] = A32_SUBS_R1_1;
            loop[4] = A32_BNE_BACK2;
            loop[5] = A32_BX_LR;
            want = n * k;
            got = smc_run(loop, 6);
        }
        if (got != want) {
            return wl_fail("smc", "rewrite %u returned %u, expected %u "
                           "(stale code?)", i, got, want);
        }
        sum += got;
        h = hash_word(h, got);
    }
    printf("smc: sum=%llu checksum=0x%08x\n", (unsigned long long)sum, h);
    munmap((void *)code, psize);
    return 0;
}

/*
 * alignfix: LDRD/STRD need word alignment even with SCTLR.A clear, so the
 * 4-byte aligned accesses run natively while the misaligned ones trap and
 * are emulated by the kernel's alignment fixup (arch/arm/mm/alignment.c).
 */

static inline uint64_t ldrd_at(const volatile void *p)
{
    uint64_t v;

    __asm__ volatile("ldrd %Q0, %R0, [%1]" : "=&r"(v) : "r"(p) : "memory");
    return v;
}

static inline void strd_at(volatile void *p, uint64_t v)
{
    __asm__ volatile("strd %Q1, %R1, [%0]" : : "r"(p), "r"(v) : "memory");
}

/* Kernel fixup counters, for stderr only (may be absent or shared). */
static bool read_alignment_stats(unsigned long *user, unsigned long *dword)
{
    FILE *f = fopen("/proc/cpu/alignment", "r");
    char line[128];
    bool have_user = false, have_dword = false;

    if (!f) {
        return false;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "User: %lu", user) == 1) {
            have_user = true;
        } else if (sscanf(line, "DWord: %lu", dword) == 1) {
            have_dword = true;
        }
    }
    fclose(f);
    return have_user && have_dword;
}

int wl_alignfix(bool bench)
{
    static volatile uint8_t buf[64] __attribute__((aligned(8)));
    static const uint8_t misalign[] = { 1, 2, 3, 5, 6, 7 };
    const uint32_t iters = bench ? 20000 : 1000;
    uint64_t seed = 0x123456789abcdefull;
    unsigned long user0 = 0, dword0 = 0, user1 = 0, dword1 = 0;
    bool stats = read_alignment_stats(&user0, &dword0);
    uint32_t h = FNV_INIT;

    printf("alignfix: size=%s iterations=%u\n", size_name(bench), iters);
    /* Keep the header if a missing fixup kills us with SIGBUS. */
    fflush(stdout);

    for (uint32_t i = 0; i < iters; i++) {
        struct {
            volatile uint8_t *p;
            const char *what;
        } site[3] = {
            { buf + 4, "4-byte aligned" },
            { buf + 16 + misalign[i % 6], "misaligned" },
            { buf + 40 + misalign[(i / 6) % 6], "misaligned" },
        };

        for (unsigned s = 0; s < 3; s++) {
            volatile uint8_t *p = site[s].p;
            uint64_t v = xorshift64(&seed), got, ref;

            if (s < 2) {
                /* STRD, check the bytes, LDRD back */
                strd_at(p, v);
                ref = le_load_bytes(p, 8);
            } else {
                /* bytes in, LDRD out */
                le_store_bytes(p, 8, v);
                ref = v;
            }
            got = ldrd_at(p);
            if (ref != v || got != v) {
                return wl_fail("alignfix", "iteration %u, %s address "
                               "buf+%u: stored 0x%016llx, bytes 0x%016llx, "
                               "ldrd 0x%016llx", i, site[s].what,
                               (unsigned)(p - buf), (unsigned long long)v,
                               (unsigned long long)ref,
                               (unsigned long long)got);
            }
            h = hash_word(h, (uint32_t)got);
            h = hash_word(h, (uint32_t)(got >> 32));
        }
    }
    if (stats && read_alignment_stats(&user1, &dword1)) {
        fprintf(stderr, "alignfix: kernel fixups: user +%lu, dword +%lu\n",
                user1 - user0, dword1 - dword0);
    }
    printf("alignfix: accesses=%u checksum=0x%08x\n", iters * 5, h);
    return 0;
}

/*
 * devmem: the QEMU virt machine's first virtio-mmio transport.  Devices
 * are plugged into the highest transport first, so this one is normally
 * empty (DeviceID 0) and unclaimed, which /dev/mem permits to map.
 */

#define VIRTIO_MMIO_BASE    0x0a000000
#define VIRTIO_MMIO_MAGIC   0x74726976u     /* "virt" */
#define VIRTIO_MMIO_VENDOR  0x554d4551u     /* "QEMU" */

int wl_devmem(bool bench)
{
    const uint32_t loops = bench ? 200000 : 10000;
    const size_t psize = sysconf(_SC_PAGESIZE);
    volatile uint32_t *regs;
    uint32_t magic, version, devid, vendor;
    int fd;

    printf("devmem: size=%s base=0x%08x loops=%u\n", size_name(bench),
           VIRTIO_MMIO_BASE, loops);

    fd = open("/dev/mem", O_RDONLY | O_SYNC);
    if (fd < 0) {
        return wl_fail("devmem", "open /dev/mem: %s", strerror(errno));
    }
    regs = mmap(NULL, psize, PROT_READ, MAP_SHARED, fd, VIRTIO_MMIO_BASE);
    if (regs == MAP_FAILED) {
        int err = errno;

        close(fd);
        return wl_fail("devmem", "mmap /dev/mem at 0x%08x: %s",
                       VIRTIO_MMIO_BASE, strerror(err));
    }
    magic = regs[0];
    version = regs[1];
    devid = regs[2];
    vendor = regs[3];
    if (magic != VIRTIO_MMIO_MAGIC || vendor != VIRTIO_MMIO_VENDOR) {
        munmap((void *)regs, psize);
        close(fd);
        return wl_fail("devmem", "magic 0x%08x vendor 0x%08x, expected "
                       "0x%08x 0x%08x", magic, vendor, VIRTIO_MMIO_MAGIC,
                       VIRTIO_MMIO_VENDOR);
    }
    for (uint32_t i = 0; i < loops; i++) {
        if (regs[0] != magic || regs[1] != version || regs[2] != devid ||
            regs[3] != vendor) {
            munmap((void *)regs, psize);
            close(fd);
            return wl_fail("devmem", "registers changed in loop %u", i);
        }
    }
    munmap((void *)regs, psize);
    close(fd);
    printf("devmem: magic=0x%08x version=%u device-id=%u vendor=0x%08x\n",
           magic, version, devid, vendor);
    return 0;
}
