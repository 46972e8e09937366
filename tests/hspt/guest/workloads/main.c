/*
 * hspt-wl: multi-call driver (dispatch table, list, time, gendata)
 *
 * Usage:
 *   hspt-wl NAME SIZE            run workload NAME, SIZE is test or bench
 *   hspt-wl time CMD [ARGS...]   run CMD, then print hspt-time-us=N to stderr
 *   hspt-wl gendata FILE BYTES   write deterministic compressible text
 *   hspt-wl list                 print workload names
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* MAP_ANONYMOUS, strsignal() etc. also under a strict -std */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hspt-wl.h"

static const workload workloads[] = {
    { "seqrw", wl_seqrw,
      "sequential word/byte read-modify-write sweeps over a big buffer" },
    { "chase", wl_chase,
      "dependent pointer chase over a random cycle of 64-byte nodes" },
    { "compute", wl_compute,
      "register-only integer loop (control, no memory traffic)" },
    { "forkstorm", wl_forkstorm,
      "fork + _exit + waitpid in a loop, checking every exit status" },
    { "pipering", wl_pipering,
      "token passed around a ring of 4 processes, each touching a buffer" },
    { "mmapchurn", wl_mmapchurn,
      "mmap/touch/munmap anonymous regions of 1..64 pages" },
    { "cow", wl_cow,
      "fork with copy-on-write on both sides plus mprotect in the child" },
    { "smc", wl_smc,
      "self-modifying A32 code regenerated in place and called" },
    { "unaligned", wl_unaligned,
      "unaligned 2/4/8-byte loads/stores, also across page boundaries" },
    { "alignfix", wl_alignfix,
      "LDRD/STRD at misaligned addresses fixed up by the kernel" },
    { "atomics", wl_atomics,
      "LDREX/STREX atomics from 2 processes x 2 threads on a shared page" },
    { "kaddr", wl_kaddr,
      "user access to a kernel address must raise SIGSEGV" },
    { "devmem", wl_devmem,
      "MMIO reads of the first virtio-mmio transport via /dev/mem" },
    { "pagecache", wl_pagecache,
      "file write/fsync/read/mmap/msync round trip through the page cache" },
};

#define N_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static void usage(void)
{
    fprintf(stderr,
            "usage: hspt-wl NAME test|bench\n"
            "       hspt-wl time CMD [ARGS...]\n"
            "       hspt-wl gendata FILE BYTES\n"
            "       hspt-wl list\n"
            "workloads:\n");
    for (size_t i = 0; i < N_WORKLOADS; i++) {
        fprintf(stderr, "  %-10s %s\n", workloads[i].name, workloads[i].desc);
    }
}

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
}

/* time CMD [ARGS...]: the child inherits stdout/stderr untouched. */
static int cmd_time(int argc, char **argv)
{
    uint64_t start, end;
    int status;
    pid_t pid;

    if (argc < 1) {
        usage();
        return 2;
    }
    fflush(stdout);
    fflush(stderr);
    start = now_us();
    pid = fork();
    if (pid < 0) {
        perror("hspt-wl time: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "hspt-wl time: %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    /* Let the child alone take terminal signals; we only report. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("hspt-wl time: waitpid");
            return 1;
        }
    }
    end = now_us();
    fprintf(stderr, "hspt-time-us=%llu\n", (unsigned long long)(end - start));
    return wl_status_code(status);
}

/* Accepts a plain byte count or one with a K/M/G (binary) suffix. */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s) {
        return false;
    }
    switch (*end) {
    case 'k': case 'K':
        v <<= 10;
        end++;
        break;
    case 'm': case 'M':
        v <<= 20;
        end++;
        break;
    case 'g': case 'G':
        v <<= 30;
        end++;
        break;
    }
    if (*end) {
        return false;
    }
    *out = v;
    return true;
}

/*
 * gendata FILE BYTES: words from a small vocabulary picked by a fixed-seed
 * PRNG, so the output compresses moderately (about 3.8:1 with gzip) and is
 * identical on every run.
 */
static int cmd_gendata(int argc, char **argv)
{
    static const char *const vocab[] = {
        "the", "page", "table", "walk", "guest", "host", "virtual",
        "physical", "address", "translation", "cache", "entry", "level",
        "fault", "kernel", "user", "memory", "region", "mapping", "access",
        "read", "write", "execute", "domain", "section", "block", "tlb",
        "flush", "asid", "vmid", "stage", "descriptor", "of", "and", "a",
        "to", "in", "is", "for", "with", "on", "by", "from", "that", "it",
        "qemu", "arm", "cortex", "linux", "busybox", "emulator", "system",
    };
    const size_t nvocab = sizeof(vocab) / sizeof(vocab[0]);
    char buf[65536];
    uint64_t total, done = 0;
    uint32_t seed = 0x2545f491;
    unsigned words_on_line = 0, line_len;
    size_t fill = 0;
    int fd;

    if (argc != 2 || !parse_bytes(argv[1], &total)) {
        usage();
        return 2;
    }
    fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "hspt-wl gendata: %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    line_len = 6 + xorshift32(&seed) % 10;
    while (done < total) {
        uint32_t r = xorshift32(&seed);
        char num[16];
        const char *w;
        size_t wl;

        if ((r & 7) == 0) {
            /* Some numbers keep the text from compressing too well. */
            wl = snprintf(num, sizeof(num), "%u", (r >> 3) % 100000);
            w = num;
        } else {
            /* Skewed pick: low indexes (common words) are more likely. */
            w = vocab[((r >> 3) % nvocab) & ((r >> 17) % nvocab)];
            wl = strlen(w);
        }

        memcpy(buf + fill, w, wl);
        fill += wl;
        if (++words_on_line >= line_len) {
            buf[fill++] = '\n';
            words_on_line = 0;
            line_len = 6 + xorshift32(&seed) % 10;
        } else {
            buf[fill++] = ' ';
        }
        /* Flush while the longest possible next word still fits. */
        if (fill + 32 > sizeof(buf) || fill >= total - done) {
            size_t n = fill;

            if (n > total - done) {
                n = total - done;
            }
            if (!write_full(fd, buf, n)) {
                perror("hspt-wl gendata: write");
                close(fd);
                return 1;
            }
            done += n;
            fill = 0;
        }
    }
    if (close(fd) < 0) {
        perror("hspt-wl gendata: close");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    if (!strcmp(argv[1], "list")) {
        for (size_t i = 0; i < N_WORKLOADS; i++) {
            printf("%s\n", workloads[i].name);
        }
        return 0;
    }
    if (!strcmp(argv[1], "time")) {
        return cmd_time(argc - 2, argv + 2);
    }
    if (!strcmp(argv[1], "gendata")) {
        return cmd_gendata(argc - 2, argv + 2);
    }
    for (size_t i = 0; i < N_WORKLOADS; i++) {
        bool bench;
        int ret;

        if (strcmp(argv[1], workloads[i].name)) {
            continue;
        }
        if (argc != 3) {
            usage();
            return 2;
        }
        if (!strcmp(argv[2], "test")) {
            bench = false;
        } else if (!strcmp(argv[2], "bench")) {
            bench = true;
        } else {
            fprintf(stderr, "hspt-wl: unknown size '%s'\n", argv[2]);
            usage();
            return 2;
        }
        /*
         * A dead peer should show up as EPIPE and a FAIL message rather
         * than kill the parent silently.  Not done for "time", where the
         * disposition would be inherited across exec.
         */
        signal(SIGPIPE, SIG_IGN);
        ret = workloads[i].fn(bench);
        if (fflush(stdout) != 0) {
            perror("hspt-wl: stdout");
            ret = 1;
        }
        return ret;
    }
    fprintf(stderr, "hspt-wl: unknown workload '%s'\n", argv[1]);
    usage();
    return 2;
}
