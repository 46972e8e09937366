/*
 * hspt-wl: page cache workload (pagecache)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* MAP_ANONYMOUS, strsignal() etc. also under a strict -std */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hspt-wl.h"

#define MiB (1024u * 1024u)
#define PC_MAX_CHUNK 65536

/* File content: word idx of the file before and after the mmap update. */
static inline uint32_t pc_pat(uint32_t idx)
{
    uint32_t x = idx * 2654435761u;

    return x ^ (x >> 15) ^ 0x50414745u;
}

static inline bool pc_modified(uint32_t idx)
{
    return (idx & 63) == 7;
}

static inline uint32_t pc_pat_mod(uint32_t idx)
{
    return pc_pat(idx) ^ (pc_modified(idx) ? 0xa5a5a5a5u ^ idx : 0);
}

/* 4 KiB .. 64 KiB, a multiple of 4 but mostly not of the page size. */
static inline size_t pc_chunk(uint32_t *seed)
{
    return 4096 + (xorshift32(seed) % 15361) * 4;
}

/*
 * Reads the whole file from offset 0 with read() in varying chunks and
 * checks it against pc_pat or pc_pat_mod.  Returns false on mismatch.
 */
static bool pc_read_check(int fd, size_t bytes, uint32_t *buf, uint32_t *seed,
                          bool modified, uint32_t *hash)
{
    uint32_t h = FNV_INIT;

    if (lseek(fd, 0, SEEK_SET) != 0) {
        wl_die("pagecache", "lseek");
    }
    for (size_t off = 0; off < bytes;) {
        size_t len = pc_chunk(seed);

        if (len > bytes - off) {
            len = bytes - off;
        }
        if (read_full(fd, buf, len) != len) {
            wl_fail("pagecache", "short read at offset %zu", off);
            return false;
        }
        for (size_t j = 0; j < len / 4; j++) {
            uint32_t idx = off / 4 + j;
            uint32_t want = modified ? pc_pat_mod(idx) : pc_pat(idx);

            if (buf[j] != want) {
                wl_fail("pagecache", "read() at offset %zu: 0x%08x, "
                        "expected 0x%08x", off + j * 4, buf[j], want);
                return false;
            }
        }
        h = hash_words(h, buf, len / 4);
        off += len;
    }
    *hash = h;
    return true;
}

int wl_pagecache(bool bench)
{
    const size_t bytes = (bench ? 64 : 4) * MiB;
    const uint32_t words = bytes / 4;
    const char *dir = getenv("HSPT_TMP");
    uint32_t seed = 0x70616765, h_write = FNV_INIT, h_read, h_map, h_mod;
    uint32_t want_mod = FNV_INIT;
    char path[PATH_MAX];
    uint32_t *buf, *map;
    struct stat st;
    int fd, ret = 1;

    printf("pagecache: size=%s bytes=%zu\n", size_name(bench), bytes);

    if (!dir || !*dir) {
        dir = "/tmp";
    }
    snprintf(path, sizeof(path), "%s/hspt-pagecache.%d", dir, (int)getpid());
    buf = malloc(PC_MAX_CHUNK);
    if (!buf) {
        wl_die("pagecache", "malloc");
    }

    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        wl_fail("pagecache", "open %s: %s", path, strerror(errno));
        free(buf);
        return 1;
    }
    for (size_t off = 0; off < bytes;) {
        size_t len = pc_chunk(&seed);

        if (len > bytes - off) {
            len = bytes - off;
        }
        for (size_t j = 0; j < len / 4; j++) {
            buf[j] = pc_pat(off / 4 + j);
        }
        if (!write_full(fd, buf, len)) {
            wl_fail("pagecache", "write at offset %zu: %s", off,
                    strerror(errno));
            goto out_close;
        }
        h_write = hash_words(h_write, buf, len / 4);
        off += len;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        wl_fail("pagecache", "fsync/close: %s", strerror(errno));
        goto out_unlink;
    }

    fd = open(path, O_RDWR);
    if (fd < 0) {
        wl_fail("pagecache", "reopen %s: %s", path, strerror(errno));
        goto out_unlink;
    }
    if (fstat(fd, &st) < 0 || st.st_size != (off_t)bytes) {
        wl_fail("pagecache", "file size is not %zu", bytes);
        goto out_close;
    }
    if (!pc_read_check(fd, bytes, buf, &seed, false, &h_read)) {
        goto out_close;
    }

    map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        wl_fail("pagecache", "mmap: %s", strerror(errno));
        goto out_close;
    }
    for (uint32_t i = 0; i < words; i++) {
        if (map[i] != pc_pat(i)) {
            wl_fail("pagecache", "mapping at offset %u: 0x%08x, expected "
                    "0x%08x", i * 4, map[i], pc_pat(i));
            munmap(map, bytes);
            goto out_close;
        }
    }
    h_map = hash_words(FNV_INIT, map, words);
    /* Dirty one word per 256 bytes through the shared mapping. */
    for (uint32_t i = 0; i < words; i++) {
        if (pc_modified(i)) {
            map[i] ^= 0xa5a5a5a5u ^ i;
        }
        want_mod = hash_word(want_mod, pc_pat_mod(i));
    }
    if (msync(map, bytes, MS_SYNC) < 0) {
        wl_fail("pagecache", "msync: %s", strerror(errno));
        munmap(map, bytes);
        goto out_close;
    }
    munmap(map, bytes);
    if (!pc_read_check(fd, bytes, buf, &seed, true, &h_mod)) {
        goto out_close;
    }

    if (h_read != h_write || h_map != h_write || h_mod != want_mod) {
        wl_fail("pagecache", "checksums disagree: write 0x%08x read 0x%08x "
                "mmap 0x%08x modified 0x%08x (expected 0x%08x)", h_write,
                h_read, h_map, h_mod, want_mod);
        goto out_close;
    }
    printf("pagecache: write=0x%08x read=0x%08x mmap=0x%08x "
           "modified=0x%08x\n", h_write, h_read, h_map, h_mod);
    ret = 0;

out_close:
    close(fd);
out_unlink:
    if (unlink(path) < 0 && ret == 0) {
        ret = wl_fail("pagecache", "unlink %s: %s", path, strerror(errno));
    }
    free(buf);
    return ret;
}
