/*
 * hspt-wl: helpers shared by the workloads
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* MAP_ANONYMOUS, strsignal() etc. also under a strict -std */
#define _GNU_SOURCE

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hspt-wl.h"

const char *size_name(bool bench)
{
    return bench ? "bench" : "test";
}

/* Report a self-check failure; returns the exit status to use. */
int wl_fail(const char *wl, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s: FAIL: ", wl);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/*
 * Fatal system call error.  exit() rather than _exit() so the parent's
 * stdout is flushed; every fork is preceded by fflush(), so a child has
 * nothing buffered that could be printed twice.
 */
void wl_die(const char *wl, const char *what)
{
    int err = errno;

    fflush(stdout);
    fprintf(stderr, "%s: FAIL: %s: %s\n", wl, what, strerror(err));
    exit(1);
}

void *wl_mmap_anon(const char *wl, size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        wl_die(wl, "mmap");
    }
    return p;
}

/* Returns the number of bytes read; short only on EOF or error. */
size_t read_full(int fd, void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t r = read(fd, (char *)buf + done, len - done);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        done += r;
    }
    return done;
}

bool write_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t r = write(fd, (const char *)buf + done, len - done);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        done += r;
    }
    return true;
}

/* fork() with stdio flushed first so buffered output is never duplicated. */
pid_t wl_fork(const char *wl)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        wl_die(wl, "fork");
    }
    return pid;
}

/* Shell-style exit code of a wait status. */
int wl_status_code(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return 255;
}

void wl_status_str(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(buf, len, "status 0x%x", status);
    }
}
