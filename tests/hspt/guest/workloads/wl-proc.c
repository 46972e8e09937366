/*
 * hspt-wl: multi-process / multi-thread workloads
 * (forkstorm, pipering, cow, atomics, kaddr)
 *
 * Results are always gathered in a fixed order (rank, loop index) so that
 * scheduling never shows up on stdout.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* MAP_ANONYMOUS, strsignal() etc. also under a strict -std */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hspt-wl.h"

#define MiB (1024u * 1024u)

static int wait_pid(const char *wl, pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            wl_die(wl, "waitpid");
        }
    }
    return status;
}

/* Returns 0 if the child exited with status 0, else reports and returns 1. */
static int check_child(const char *wl, const char *who, int status)
{
    char how[64];

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    wl_status_str(status, how, sizeof(how));
    return wl_fail(wl, "%s ended with %s", who, how);
}

/* forkstorm */

int wl_forkstorm(bool bench)
{
    const uint32_t n = bench ? 3000 : 200;
    uint32_t sum = 0, want = 0;

    printf("forkstorm: size=%s forks=%u\n", size_name(bench), n);
    for (uint32_t i = 0; i < n; i++) {
        pid_t pid = wl_fork("forkstorm");
        int status;

        if (pid == 0) {
            _exit(i & 0x7f);
        }
        status = wait_pid("forkstorm", pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != (int)(i & 0x7f)) {
            char how[64];

            wl_status_str(status, how, sizeof(how));
            return wl_fail("forkstorm", "child %u ended with %s, expected "
                           "exit %u", i, how, i & 0x7f);
        }
        sum += WEXITSTATUS(status);
        want += i & 0x7f;
    }
    if (sum != want) {
        return wl_fail("forkstorm", "status sum %u, expected %u", sum, want);
    }
    printf("forkstorm: count=%u status-sum=%u\n", n, sum);
    return 0;
}

/*
 * pipering: rank r reads the token from pipe (r + 3) % 4 and writes it to
 * pipe r.  On each hop the holder adds the token counter to the first word
 * of every cache line of its private buffer and folds one sampled word into
 * the token, so the whole run has a closed form the parent can check.
 */

#define RING       4
#define RING_MAGIC 0x52494e47u

typedef struct ring_token {
    uint32_t magic;
    uint32_t counter;       /* hops so far */
    uint32_t sum;
} ring_token;

typedef struct ring_result {
    uint32_t rank;
    uint32_t checksum;
} ring_result;

static inline uint32_t ring_init(uint32_t rank, uint32_t word)
{
    return ((rank + 1) * 0x9e3779b9u) ^ (word * 0x85ebca6bu);
}

static inline uint32_t ring_sample_line(uint32_t counter, uint32_t lines)
{
    return (counter * 2654435761u) % lines;
}

static void ring_hop(uint32_t *buf, uint32_t lines, ring_token *t)
{
    for (uint32_t l = 0; l < lines; l++) {
        buf[l * 16] += t->counter;
    }
    t->sum = hash_word(t->sum, buf[ring_sample_line(t->counter, lines) * 16]);
    t->counter++;
}

/*
 * Runs one ring member; returns its buffer checksum (exits on error).
 * Rank 0 also receives the token after the last hop into *final.
 */
static uint32_t ring_member(uint32_t rank, int in, int out, uint32_t rounds,
                            size_t bytes, ring_token *final)
{
    const uint32_t words = bytes / 4, lines = bytes / 64;
    uint32_t *buf = wl_mmap_anon("pipering", bytes);
    ring_token t = { RING_MAGIC, 0, FNV_INIT };
    uint32_t h;

    for (uint32_t i = 0; i < words; i++) {
        buf[i] = ring_init(rank, i);
    }
    for (uint32_t r = 0; r < rounds; r++) {
        if (rank != 0 || r != 0) {
            if (read_full(in, &t, sizeof(t)) != sizeof(t)) {
                wl_fail("pipering", "rank %u: token lost in round %u", rank, r);
                exit(1);
            }
        }
        if (t.magic != RING_MAGIC || t.counter != r * RING + rank) {
            wl_fail("pipering", "rank %u: bad token %u in round %u",
                    rank, t.counter, r);
            exit(1);
        }
        ring_hop(buf, lines, &t);
        if (!write_full(out, &t, sizeof(t))) {
            wl_die("pipering", "write token");
        }
    }
    if (rank == 0) {
        /* The last hop of rank 3 brings the token home. */
        if (read_full(in, &t, sizeof(t)) != sizeof(t) ||
            t.magic != RING_MAGIC || t.counter != rounds * RING) {
            wl_fail("pipering", "final token missing");
            exit(1);
        }
    }
    *final = t;
    h = hash_words(FNV_INIT, buf, words);
    munmap(buf, bytes);
    return h;
}

int wl_pipering(bool bench)
{
    const uint32_t rounds = bench ? 5000 : 300;
    const size_t bytes = (bench ? 1024 : 256) * 1024;
    const uint32_t words = bytes / 4, lines = bytes / 64;
    uint32_t checksum[RING] = { 0 }, want[RING], acc[RING] = { 0 };
    uint32_t want_sum = FNV_INIT;
    ring_token tok;
    int ring[RING][2], res[2], ret = 0;
    pid_t pids[RING];

    printf("pipering: size=%s procs=%u rounds=%u buffer=%zu\n",
           size_name(bench), RING, rounds, bytes);

    for (int i = 0; i < RING; i++) {
        if (pipe(ring[i]) < 0) {
            wl_die("pipering", "pipe");
        }
    }
    if (pipe(res) < 0) {
        wl_die("pipering", "pipe");
    }

    for (uint32_t rank = 1; rank < RING; rank++) {
        pids[rank] = wl_fork("pipering");
        if (pids[rank] == 0) {
            int in = ring[(rank + RING - 1) % RING][0];
            int out = ring[rank][1];
            ring_result rr = { rank, 0 };
            ring_token last;

            /* Close all other ends so a dead member gives EOF, not a hang. */
            for (int i = 0; i < RING; i++) {
                if (ring[i][0] != in) {
                    close(ring[i][0]);
                }
                if (ring[i][1] != out) {
                    close(ring[i][1]);
                }
            }
            close(res[0]);
            rr.checksum = ring_member(rank, in, out, rounds, bytes, &last);
            if (!write_full(res[1], &rr, sizeof(rr))) {
                _exit(1);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < RING; i++) {
        if (i != RING - 1) {
            close(ring[i][0]);
        }
        if (i != 0) {
            close(ring[i][1]);
        }
    }
    close(res[1]);

    checksum[0] = ring_member(0, ring[RING - 1][0], ring[0][1], rounds, bytes,
                              &tok);
    close(ring[RING - 1][0]);
    close(ring[0][1]);

    /* Results may arrive in any order; store them by rank. */
    for (uint32_t i = 1; i < RING; i++) {
        ring_result rr;

        if (read_full(res[0], &rr, sizeof(rr)) != sizeof(rr) ||
            rr.rank == 0 || rr.rank >= RING) {
            ret = wl_fail("pipering", "missing result from a ring member");
            break;
        }
        checksum[rr.rank] = rr.checksum;
    }
    close(res[0]);
    for (uint32_t rank = 1; rank < RING; rank++) {
        char who[32];

        snprintf(who, sizeof(who), "rank %u", rank);
        ret |= check_child("pipering", who, wait_pid("pipering", pids[rank]));
    }
    if (ret) {
        return ret;
    }

    /* Replay the closed form: acc[rank] is what each hop added so far. */
    for (uint32_t c = 0; c < rounds * RING; c++) {
        uint32_t rank = c % RING;
        uint32_t line = ring_sample_line(c, lines);

        acc[rank] += c;
        want_sum = hash_word(want_sum, ring_init(rank, line * 16) + acc[rank]);
    }
    for (uint32_t rank = 0; rank < RING; rank++) {
        uint32_t h = FNV_INIT;

        for (uint32_t i = 0; i < words; i++) {
            h = hash_word(h, ring_init(rank, i) + ((i & 15) ? 0 : acc[rank]));
        }
        want[rank] = h;
        if (checksum[rank] != want[rank]) {
            ret = wl_fail("pipering", "rank %u buffer checksum 0x%08x, "
                          "expected 0x%08x", rank, checksum[rank], want[rank]);
        }
    }
    if (tok.sum != want_sum) {
        ret = wl_fail("pipering", "token sum 0x%08x, expected 0x%08x",
                      tok.sum, want_sum);
    }
    printf("pipering: token counter=%u sum=0x%08x\n", tok.counter, tok.sum);
    printf("pipering: buffers 0x%08x 0x%08x 0x%08x 0x%08x\n",
           checksum[0], checksum[1], checksum[2], checksum[3]);
    return ret;
}

/*
 * cow: after fork the parent rewrites pages 1, 5, 9... and the child
 * rewrites all even pages, so copy-on-write is broken from both sides.
 * The child must still see the pre-fork values on odd pages, and the
 * parent must not see any of the child's writes.
 */

static inline uint32_t cow_pat(uint32_t rep, uint32_t i)
{
    return (i * 0x9e3779b1u) ^ (rep * 0x7f4a7c15u) ^ 0x5555aaaau;
}

static inline uint32_t cow_child_val(uint32_t v, uint32_t i)
{
    return ~v ^ (i << 3);
}

static inline uint32_t cow_parent_val(uint32_t v)
{
    return v + 0x01010101u;
}

/*
 * log2 of the words per page: loops take a word's page with a shift, as a
 * division per word (a __udivsi3 call in armv7-a code, which has no
 * divide instruction) made cow time QEMU's lookups of the helper's return
 * (41 % of the run) rather than copy-on-write.
 */
static uint32_t cow_words_per_page_shift(void)
{
    return __builtin_ctzl(sysconf(_SC_PAGESIZE) / 4);
}

/* What the child's view of word i should be after its writes. */
static inline uint32_t cow_child_view(uint32_t rep, uint32_t i, uint32_t wps)
{
    uint32_t v = cow_pat(rep, i);

    return ((i >> wps) & 1) ? v : cow_child_val(v, i);
}

static inline uint32_t cow_parent_view(uint32_t rep, uint32_t i, uint32_t wps)
{
    uint32_t v = cow_pat(rep, i);

    return ((i >> wps) & 3) == 1 ? cow_parent_val(v) : v;
}

typedef struct cow_report {
    uint32_t checksum;      /* whole buffer */
    uint32_t ro_checksum;   /* the mprotect(PROT_READ) quarter */
} cow_report;

static void cow_child(uint32_t *w, size_t bytes, uint32_t rep, int go,
                      int out)
{
    const uint32_t wps = cow_words_per_page_shift();
    const uint32_t words = bytes / 4;
    const uint32_t ro_first = words / 4, ro_words = words / 4;
    cow_report rp;
    uint32_t h;
    char c;

    /* Wait until the parent has written its pages. */
    if (read_full(go, &c, 1) != 1) {
        _exit(3);
    }
    for (uint32_t i = 0; i < words; i++) {
        if ((i >> wps) & 1) {
            if (w[i] != cow_pat(rep, i)) {
                fprintf(stderr, "cow: child: word %u is 0x%08x, expected "
                        "pre-fork 0x%08x\n", i, w[i], cow_pat(rep, i));
                _exit(2);
            }
        } else {
            w[i] = cow_child_val(w[i], i);
        }
    }
    for (uint32_t i = 0; i < words; i++) {
        if (w[i] != cow_child_view(rep, i, wps)) {
            fprintf(stderr, "cow: child: word %u lost its write\n", i);
            _exit(2);
        }
    }
    if (mprotect(w + ro_first, ro_words * 4, PROT_READ) < 0) {
        perror("cow: child: mprotect");
        _exit(2);
    }
    rp.ro_checksum = hash_words(FNV_INIT, w + ro_first, ro_words);
    h = FNV_INIT;
    for (uint32_t i = ro_first; i < ro_first + ro_words; i++) {
        h = hash_word(h, cow_child_view(rep, i, wps));
    }
    if (rp.ro_checksum != h) {
        fprintf(stderr, "cow: child: read-only range checksum mismatch\n");
        _exit(2);
    }
    rp.checksum = hash_words(FNV_INIT, w, words);
    if (!write_full(out, &rp, sizeof(rp))) {
        _exit(3);
    }
    _exit(0);
}

int wl_cow(bool bench)
{
    const size_t bytes = (bench ? 16 : 4) * MiB;
    const uint32_t reps = bench ? 20 : 3;
    const uint32_t wps = cow_words_per_page_shift();
    const uint32_t words = bytes / 4;
    uint32_t *w = wl_mmap_anon("cow", bytes);
    uint32_t child_sum = FNV_INIT, ro_sum = FNV_INIT, parent_sum = FNV_INIT;

    printf("cow: size=%s bytes=%zu reps=%u\n", size_name(bench), bytes, reps);

    for (uint32_t rep = 0; rep < reps; rep++) {
        int go[2], res[2], ret;
        uint32_t want, want_ro, h;
        cow_report rp;
        pid_t pid;

        for (uint32_t i = 0; i < words; i++) {
            w[i] = cow_pat(rep, i);
        }
        if (pipe(go) < 0 || pipe(res) < 0) {
            wl_die("cow", "pipe");
        }
        pid = wl_fork("cow");
        if (pid == 0) {
            close(go[1]);
            close(res[0]);
            cow_child(w, bytes, rep, go[0], res[1]);
        }
        close(go[0]);
        close(res[1]);

        for (uint32_t i = 0; i < words; i++) {
            if (((i >> wps) & 3) == 1) {
                w[i] = cow_parent_val(w[i]);
            }
        }
        if (!write_full(go[1], "g", 1)) {
            wl_die("cow", "write go");
        }
        close(go[1]);
        if (read_full(res[0], &rp, sizeof(rp)) != sizeof(rp)) {
            memset(&rp, 0, sizeof(rp));
        }
        close(res[0]);
        ret = check_child("cow", "child", wait_pid("cow", pid));
        if (ret) {
            return ret;
        }

        want = FNV_INIT;
        want_ro = FNV_INIT;
        for (uint32_t i = 0; i < words; i++) {
            want = hash_word(want, cow_child_view(rep, i, wps));
            if (i >= words / 4 && i < words / 2) {
                want_ro = hash_word(want_ro, cow_child_view(rep, i, wps));
            }
        }
        if (rp.checksum != want || rp.ro_checksum != want_ro) {
            return wl_fail("cow", "rep %u: child reported 0x%08x/0x%08x, "
                           "expected 0x%08x/0x%08x", rep, rp.checksum,
                           rp.ro_checksum, want, want_ro);
        }
        for (uint32_t i = 0; i < words; i++) {
            if (w[i] != cow_parent_view(rep, i, wps)) {
                return wl_fail("cow", "rep %u: parent word %u is 0x%08x, "
                               "expected 0x%08x", rep, i, w[i],
                               cow_parent_view(rep, i, wps));
            }
        }
        h = hash_words(FNV_INIT, w, words);
        child_sum = hash_word(child_sum, rp.checksum);
        ro_sum = hash_word(ro_sum, rp.ro_checksum);
        parent_sum = hash_word(parent_sum, h);
    }
    printf("cow: child-checksum=0x%08x ro-checksum=0x%08x "
           "parent-checksum=0x%08x\n", child_sum, ro_sum, parent_sum);
    munmap(w, bytes);
    return 0;
}

/*
 * atomics: P processes x T threads on one MAP_SHARED page.  Exchange
 * conserves the set of tokens (slot + one per thread), so a lost or
 * duplicated exchange shows up even though the final slot value is racy.
 */

#define ATOM_PROCS   2
#define ATOM_THREADS 2
#define ATOM_WORKERS (ATOM_PROCS * ATOM_THREADS)

typedef struct atom_shared {
    uint32_t add_ctr;
    uint32_t cas_ctr;
    uint32_t xchg_slot;
    uint32_t ready;
    uint64_t add64;
    uint32_t tokens[ATOM_WORKERS];
    uint32_t cas_retries[ATOM_WORKERS];
} atom_shared;

typedef struct atom_arg {
    atom_shared *sh;
    uint32_t id;
    uint32_t n;
} atom_arg;

static inline uint32_t atom_token(uint32_t id)
{
    return 0x10000000u * (id + 1) + 0x1234u * id;
}

static void *atom_thread(void *opaque)
{
    atom_arg *a = opaque;
    atom_shared *sh = a->sh;
    uint32_t token = atom_token(a->id), retries = 0;

    /* Start together to maximise contention (yield for -smp 1). */
    __atomic_fetch_add(&sh->ready, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) < ATOM_WORKERS) {
        sched_yield();
    }
    for (uint32_t i = 0; i < a->n; i++) {
        uint32_t old;

        __atomic_fetch_add(&sh->add_ctr, 1, __ATOMIC_SEQ_CST);

        old = __atomic_load_n(&sh->cas_ctr, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&sh->cas_ctr, &old, old + 1, true,
                                            __ATOMIC_SEQ_CST,
                                            __ATOMIC_RELAXED)) {
            retries++;
        }

        token = __atomic_exchange_n(&sh->xchg_slot, token, __ATOMIC_SEQ_CST);

        __atomic_fetch_add(&sh->add64, 0x100000001ull, __ATOMIC_SEQ_CST);
    }
    sh->tokens[a->id] = token;
    sh->cas_retries[a->id] = retries;
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int wl_atomics(bool bench)
{
    const uint32_t n = bench ? 500000 : 20000;
    const uint32_t total = ATOM_WORKERS * n;
    atom_shared *sh;
    uint32_t have[ATOM_WORKERS + 1], want[ATOM_WORKERS + 1], xsum = 0;
    uint32_t retries = 0;
    pid_t pids[ATOM_PROCS];
    int ret = 0;

    printf("atomics: size=%s procs=%u threads=%u n=%u\n", size_name(bench),
           ATOM_PROCS, ATOM_THREADS, n);

    sh = mmap(NULL, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        wl_die("atomics", "mmap shared");
    }
    sh->xchg_slot = 0xa5a5a5a5u;

    for (uint32_t p = 0; p < ATOM_PROCS; p++) {
        pids[p] = wl_fork("atomics");
        if (pids[p] == 0) {
            pthread_t th[ATOM_THREADS];
            atom_arg args[ATOM_THREADS];

            for (uint32_t t = 0; t < ATOM_THREADS; t++) {
                args[t] = (atom_arg){ sh, p * ATOM_THREADS + t, n };
                if (pthread_create(&th[t], NULL, atom_thread, &args[t])) {
                    fprintf(stderr, "atomics: pthread_create failed\n");
                    _exit(1);
                }
            }
            for (uint32_t t = 0; t < ATOM_THREADS; t++) {
                pthread_join(th[t], NULL);
            }
            _exit(0);
        }
    }
    for (uint32_t p = 0; p < ATOM_PROCS; p++) {
        ret |= check_child("atomics", "worker process",
                           wait_pid("atomics", pids[p]));
    }
    if (ret) {
        return ret;
    }

    /* The slot plus the tokens must be a permutation of the initial set. */
    want[0] = 0xa5a5a5a5u;
    have[0] = sh->xchg_slot;
    for (uint32_t i = 0; i < ATOM_WORKERS; i++) {
        want[i + 1] = atom_token(i);
        have[i + 1] = sh->tokens[i];
        retries += sh->cas_retries[i];
    }
    qsort(want, ATOM_WORKERS + 1, sizeof(uint32_t), cmp_u32);
    qsort(have, ATOM_WORKERS + 1, sizeof(uint32_t), cmp_u32);
    for (uint32_t i = 0; i <= ATOM_WORKERS; i++) {
        xsum += have[i];
        if (have[i] != want[i]) {
            ret = wl_fail("atomics", "exchange lost or duplicated a token");
            break;
        }
    }
    if (sh->add_ctr != total) {
        ret = wl_fail("atomics", "fetch-add counter %u, expected %u",
                      sh->add_ctr, total);
    }
    if (sh->cas_ctr != total) {
        ret = wl_fail("atomics", "cas counter %u, expected %u",
                      sh->cas_ctr, total);
    }
    if (sh->add64 != total * 0x100000001ull) {
        ret = wl_fail("atomics", "64-bit counter 0x%016llx, expected 0x%016llx",
                      (unsigned long long)sh->add64,
                      (unsigned long long)(total * 0x100000001ull));
    }
    fprintf(stderr, "atomics: cas retries %u\n", retries);
    printf("atomics: fetch-add=%u cas=%u add64=0x%016llx\n", sh->add_ctr,
           sh->cas_ctr, (unsigned long long)sh->add64);
    printf("atomics: xchg tokens=%u token-sum=0x%08x\n",
           ATOM_WORKERS + 1, xsum);
    return ret;
}

/*
 * kaddr: user accesses to a kernel address must fault.  The address goes
 * through a volatile so GCC neither folds the access nor warns about it.
 */

static volatile uintptr_t kaddr_addr = 0xc0000000u;

static void kaddr_read(void)
{
    volatile uint32_t *p = (volatile uint32_t *)kaddr_addr;

    (void)*p;
}

static void kaddr_write(void)
{
    volatile uint32_t *p = (volatile uint32_t *)kaddr_addr;

    *p = 0x12345678;
}

static void kaddr_exec(void)
{
    /* Even address: BLX enters ARM state, like any A32 function. */
    void (*fn)(void) = (void (*)(void))kaddr_addr;

    fn();
}

int wl_kaddr(bool bench)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        { "read", kaddr_read },
        { "write", kaddr_write },
        { "exec", kaddr_exec },
    };
    int ret = 0;

    printf("kaddr: size=%s address=0x%08lx\n", size_name(bench),
           (unsigned long)kaddr_addr);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        pid_t pid = wl_fork("kaddr");
        int status;

        if (pid == 0) {
            struct rlimit nocore = { 0, 0 };

            setrlimit(RLIMIT_CORE, &nocore);
            tests[i].fn();
            _exit(0);
        }
        status = wait_pid("kaddr", pid);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
            printf("kaddr %s: SIGSEGV\n", tests[i].name);
        } else {
            char how[64];

            wl_status_str(status, how, sizeof(how));
            printf("kaddr %s: %s\n", tests[i].name, how);
            ret = wl_fail("kaddr", "%s of 0x%08lx: child ended with %s, "
                          "expected SIGSEGV", tests[i].name,
                          (unsigned long)kaddr_addr, how);
        }
    }
    return ret;
}
