/*
 * qemu-hspt: what the host charges for the operations a shadow page costs
 *
 * HSPT pays for each shadow page with host system calls and faults, and
 * their price differs from host to host by a factor of five or more (PTI
 * without PCID, nested or shadow paging under a hypervisor). This prints
 * the mean cost of each, over N pages of a shared memfd mapped into a
 * reserved range the way hspt-region.c does it:
 *
 *   gcc -O2 -o hostcost tests/hspt/hostcost/hostcost.c && ./hostcost [N]
 *
 * A benchmark aid, not a test; pin it (taskset -c 1) for steadier figures.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define PAGE 4096UL

static double now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void report(const char *what, double start, long n)
{
    printf("%-48s %8.2f us\n", what, (now_ns() - start) / n / 1e3);
}

/* The faulting load below is at probe_load; resume after it. */
extern const char probe_load[], probe_done[];

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;

    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)probe_done;
}

static void probe(volatile char *p)
{
    asm volatile("probe_load: movb (%0), %%al\n"
                 "probe_done:\n" : : "r"(p) : "rax", "memory");
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    size_t size = n * PAGE;
    int fd = memfd_create("hostcost", 0);
    char *ram, *res;

    if (n <= 0 || fd < 0 || ftruncate(fd, size) < 0) {
        perror("hostcost: memfd");
        return 1;
    }
    ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    /* Every other page: each mapping is a VMA of its own, as in a slot. */
    res = mmap(NULL, 2 * size, PROT_NONE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED || res == MAP_FAILED) {
        perror("hostcost: mmap");
        return 1;
    }
    for (size_t i = 0; i < size; i += PAGE) {
        ram[i] = 1;
    }
#define SHADOW(i) (res + 2 * (i) * PAGE)
/* Time STMT, run for every page I, as WHAT. */
#define TIMED(what, stmt)                       \
    do {                                        \
        double t0 = now_ns();                   \
        for (long i = 0; i < n; i++) {          \
            stmt;                               \
        }                                       \
        report(what, t0, n);                    \
    } while (0)
#define MAP(i, prot, flags, page) \
    mmap(SHADOW(i), PAGE, prot, MAP_SHARED | MAP_FIXED | (flags), fd, \
         (page) * PAGE)
#define RW (PROT_READ | PROT_WRITE)

    TIMED("mmap of a page into the reservation", MAP(i, RW, 0, i));
    TIMED("first store to it (host page fault)", SHADOW(i)[0]++);
    TIMED("second store", SHADOW(i)[0]++);
    TIMED("mmap over a mapped page, MAP_POPULATE",
          MAP(i, RW, MAP_POPULATE, (i + 1) % n));
    TIMED("first store after MAP_POPULATE", SHADOW(i)[0]++);
    TIMED("mmap over a mapped page", MAP(i, RW, 0, i));
    TIMED("first store after that mmap", SHADOW(i)[0]++);
    TIMED("mprotect read-only", mprotect(SHADOW(i), PAGE, PROT_READ));
    TIMED("mprotect read-write", mprotect(SHADOW(i), PAGE, RW));
    TIMED("first store after mprotect read-write", SHADOW(i)[0]++);
    TIMED("mprotect PROT_NONE (parking)",
          mprotect(SHADOW(i), PAGE, PROT_NONE));
    TIMED("mmap of the reservation over a page (unmap)",
          mmap(SHADOW(i), PAGE, PROT_NONE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
               -1, 0));
    TIMED("getppid (a bare system call)", getppid());

    struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };
    sigaction(SIGSEGV, &sa, NULL);
    TIMED("SIGSEGV on a reserved page, handled, resumed", probe(SHADOW(i)));
    return 0;
}
