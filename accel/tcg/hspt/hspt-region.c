/*
 * qemu-hspt: per-vCPU shadow spaces, the SIGSEGV redirect, shadow page
 * maintenance and the reverse map used to write-protect shadow pages
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/madvise.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/cutils.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "hw/core/cpu.h"
#include "exec/cpu-common.h"
#include "exec/ramblock.h"
#include "exec/target_page.h"
#include "exec/translation-block.h"
#include "exec/tb-flush.h"
#include "migration/misc.h"
#include "../tb-context.h"
#include "../tb-jmp-cache.h"
#include "hspt.h"
#include "hspt-internal.h"
#include "trace.h"

#include <asm/prctl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

#define HSPT_GUEST_VA_SIZE (1ull << 32)
/* A slot flush unmaps page by page up to this many pages, else wholesale. */
#define HSPT_FLUSH_PAGEWISE_MAX 32
/*
 * A guest page whose shadow mapping was dropped by this many page flushes
 * within one epoch of its space (a kmap or fixmap slot, a buffer mapped
 * and unmapped in a loop, the stack of a process that forks in a loop:
 * one copy-on-write break per fork) is not mapped again in that space
 * until the space gets another context: every refill would cost a signal
 * and two mmaps where softmmu refills after a guest fault or TLB miss in a
 * fraction of that. Accesses to it take the softmmu path; sites that keep
 * hitting it are retranslated onto softmmu by hspt-sites.c.
 */
#define HSPT_HOT_PAGE_FLUSHES 16
/*
 * An epoch ends when its space becomes current this long after the epoch
 * began. Counting over the space's lifetime instead also caught a shell
 * that forks once per command: its stack got hot after 16 commands, and
 * every translation block using the stack was retranslated onto softmmu
 * after one signal each (3800 in one boot of the guest kit).
 */
#define HSPT_HOT_EPOCH_NS (100 * SCALE_MS)
/*
 * Fills of up to this many pages (a small page, a 64 KiB large page, a run
 * of pages next to clean ones) that an access will touch fill the host's
 * page-table entries in the mmap call (MAP_POPULATE).
 */
#define HSPT_POPULATE_MAX_PAGES 16
bool hspt_enabled;
int8_t hspt_slot_of_idx[16] = { [0 ... 15] = -1 };
static int8_t hspt_idx_of_slot[HSPT_MAX_SLOTS];
HsptStats hspt_stats;

static HsptCPU *hspt_cpus;
static unsigned hspt_max_cpus;
static unsigned hspt_nslots;
static unsigned hspt_nspaces;
/* hspt_nspaces plus the nursery, if there is one: what coherence covers. */
static unsigned hspt_nspaces_all;
static int64_t hspt_nursery_ns;
static uint64_t hspt_vma_budget;
static struct sigaction hspt_prev_segv;
bool hspt_base_in_gs;
/*
 * QEMU_HSPT_GS_BY_SYSCALL=1, for tests on hosts without FSGSBASE: generated
 * code takes its %gs form, which hosts with FSGSBASE run, and a switch of
 * space sets %gs with arch_prctl() instead of wrgsbase (slower: a system
 * call per switch). Some hypervisors let wrgsbase run in a guest whose
 * kernel does not save the base, so it is never used without the hwcap.
 */
static bool hspt_gs_by_syscall;
/* Without wrgsbase: the current space's slot bases, for generated code. */
static __thread uintptr_t hspt_tls_slot_base[HSPT_MAX_SLOTS];
intptr_t hspt_tls_slot_base_ofs;

/*
 * Protects every space's bookkeeping and the reverse map. Taken inside
 * the vCPU's tlb_c.lock, never the other way round: the owner fills and
 * flushes, other threads write-protect (code protection, dirty logging).
 */
static QemuMutex hspt_lock;

/*
 * Reverse map: for each RAM page (ram_addr >> page bits), the shadow pages
 * that may map it writable, as packed HsptRmapEntry values. Entries are
 * checked against the slot before use and pruned lazily, so unmaps and
 * flushes never have to find them.
 */
typedef struct HsptRmap {
    uint32_t n;
    uint32_t cap;
    uint64_t *e;
} HsptRmap;

static HsptRmap *hspt_rmap;
static size_t hspt_rmap_len;

/* Guest pages per shadow region (one bit each in the slot bitmaps). */
static size_t hspt_slot_pages(void)
{
    return HSPT_GUEST_VA_SIZE >> qemu_target_page_bits();
}

static size_t hspt_space_size(void)
{
    return (size_t)hspt_nslots * HSPT_SLOT_SIZE;
}

static HsptCPU *hspt_cpu(CPUState *cpu)
{
    assert(cpu->cpu_index >= 0 && cpu->cpu_index < hspt_max_cpus);
    return &hspt_cpus[cpu->cpu_index];
}

/*
 * Reservations are kept out of core dumps: gdb's gcore wrote every
 * vCPU's 216 GiB of them out as zeros. A new mapping does not inherit
 * MADV_DONTDUMP, so each one takes it again, which also lets it merge
 * with its neighbours as the VMA accounting expects. (Should the madvise
 * fail, the range is still reserved; the accounting's slack covers the
 * VMAs that did not merge.)
 */
static void *hspt_reserve_no_dump(void *p, size_t len)
{
    if (p != MAP_FAILED) {
        qemu_madvise(p, len, QEMU_MADV_DONTDUMP);
    }
    return p;
}

/* Replace [addr, addr + len) with an inaccessible, unbacked reservation. */
static bool hspt_reserve(void *addr, size_t len)
{
    void *p = mmap(addr, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    return hspt_reserve_no_dump(p, len) == addr;
}

static void hspt_space_free(HsptSpace *sp)
{
    for (unsigned s = 0; s < hspt_nslots; s++) {
        HsptSlot *slot = &sp->slot[s];

        if (slot->ram_pfn) {
            munmap(slot->ram_pfn, hspt_slot_pages() * sizeof(uint32_t));
        }
        if (slot->page_flushes) {
            munmap(slot->page_flushes, hspt_slot_pages());
        }
        if (slot->lp.order) {
            munmap(slot->lp.order, HSPT_LP_GRANULES);
        }
        g_free(slot->mapped);
        g_free(slot->mapped_summary);
        g_free(slot->writable);
        g_free(slot->global);
        g_free(slot->parked);
        slot->ram_pfn = NULL;
        slot->page_flushes = NULL;
        slot->lp.order = NULL;
        slot->mapped = slot->mapped_summary = NULL;
        slot->writable = slot->global = slot->parked = NULL;
    }
    if (sp->jc) {
        g_free_rcu(sp->jc, rcu);
        sp->jc = NULL;
    }
}

static void *hspt_bookkeeping_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

/*
 * Bookkeeping is allocated when a space is first used (about 11 MiB of
 * address space per slot, touched only where pages are mapped). False if
 * there is not enough memory: the space stays unused.
 */
static bool hspt_space_alloc(HsptSpace *sp)
{
    size_t npages = hspt_slot_pages();

    if (sp->slot[0].mapped) {
        return true;
    }
    for (unsigned s = 0; s < hspt_nslots; s++) {
        HsptSlot *slot = &sp->slot[s];

        slot->ram_pfn = hspt_bookkeeping_alloc(npages * sizeof(uint32_t));
        slot->page_flushes = hspt_bookkeeping_alloc(npages);
        slot->lp.order = hspt_bookkeeping_alloc(HSPT_LP_GRANULES);
        slot->mapped = bitmap_try_new(npages);
        slot->mapped_summary = bitmap_try_new(BITS_TO_LONGS(npages));
        slot->writable = bitmap_try_new(npages);
        slot->global = bitmap_try_new(npages);
        slot->parked = bitmap_try_new(npages);
        if (!slot->ram_pfn || !slot->page_flushes || !slot->lp.order ||
            !slot->mapped || !slot->mapped_summary || !slot->writable ||
            !slot->global || !slot->parked) {
            hspt_space_free(sp);
            return false;
        }
    }
    sp->jc = g_try_new0(CPUJumpCache, 1);
    if (!sp->jc) {
        hspt_space_free(sp);
        return false;
    }
    sp->jc_valid = false;
    return true;
}

/*
 * The least recently used space other than the current one (only among
 * those with their bookkeeping if SET_UP), else the current one.
 */
static HsptSpace *hspt_lru_space(HsptCPU *hc, bool set_up)
{
    HsptSpace *lru = NULL;

    for (unsigned i = 0; i < hspt_nspaces; i++) {
        HsptSpace *sp = &hc->spaces[i];

        if (sp != hc->cur && (!set_up || sp->slot[0].mapped) &&
            (!lru || sp->last_used < lru->last_used)) {
            lru = sp;
        }
    }
    return lru ? lru : hc->cur;
}

/* The %fs base: glibc's thread control block starts with a pointer to it. */
static uintptr_t hspt_fs_base(void)
{
    uintptr_t base;

    asm("mov %%fs:0, %0" : "=r"(base));
    return base;
}

/* Make BASE the space that this thread's generated code accesses. */
static void hspt_set_code_base(void *base)
{
    static __thread void *cur_base;

    if (cur_base == base) {
        return;
    }
    if (hspt_gs_by_syscall) {
        /* Checked at startup; the base is a user address. */
        if (syscall(SYS_arch_prctl, ARCH_SET_GS, (uintptr_t)base)) {
            /* Generated code would run with another space's base. */
            error_report("hspt: arch_prctl(ARCH_SET_GS, %p): %s", base,
                         strerror(errno));
            abort();
        }
    } else if (hspt_base_in_gs) {
        asm volatile("wrgsbase %0" : : "r"(base) : "memory");
    } else {
        /* Generated code assumes the offset every thread has. */
        assert((uintptr_t)hspt_tls_slot_base - hspt_fs_base() ==
               hspt_tls_slot_base_ofs);
        for (unsigned s = 0; s < HSPT_MAX_SLOTS; s++) {
            hspt_tls_slot_base[s] = (uintptr_t)base + s * HSPT_SLOT_SIZE;
        }
    }
    cur_base = base;
}

/* ADDR lies in HC's reservation (any of its spaces, or the dead one). */
static bool hspt_cpu_holds(const HsptCPU *hc, const void *addr)
{
    return hc->base && (const uint8_t *)addr >= hc->base &&
           (const uint8_t *)addr < hc->base + hc->size;
}

static HsptCPU *hspt_cpu_of_addr(const void *addr)
{
    for (unsigned c = 0; c < hspt_max_cpus; c++) {
        if (hspt_cpu_holds(&hspt_cpus[c], addr)) {
            return &hspt_cpus[c];
        }
    }
    return NULL;
}

static void hspt_set_softmmu_code(CPUState *cpu, bool on)
{
    if (on) {
        cpu->tcg_cflags |= CF_HSPT_SOFTMMU;
    } else {
        cpu->tcg_cflags &= ~CF_HSPT_SOFTMMU;
    }
}

/*
 * Migrations that track guest RAM through userfaultfd in QEMU's own
 * mapping of it, which shadow pages bypass:
 * - While an incoming migration may still bring pages in by postcopy, a
 *   page that has not arrived is a hole in the RAM file. A direct access
 *   would fill the hole with zeros, the guest would read them, and the
 *   page's arrival would fail (EEXIST) and pause the migration.
 * - A background snapshot saves the guest RAM of the moment the VM
 *   stopped while the guest runs on, copying each page before the
 *   guest's first write to it, which write protection catches. A direct
 *   store would change the page before it is saved.
 * Meanwhile nothing is shadow-mapped, generated code finds no shadow page
 * (the vCPU's never-mapped space), and the vCPUs run softmmu-only code.
 * The spaces stay coherent and are used again afterwards.
 */
static bool hspt_held_for_migration(void)
{
    return migration_in_incoming_postcopy() || migration_in_bg_snapshot();
}

/* Whether the vCPU keeps off its shadow (on its own thread). */
static bool hspt_cpu_off_shadow(HsptCPU *hc)
{
    return qatomic_read(&hc->given_up) || hc->held_for_migration;
}

/* Where the vCPU's generated code finds its shadow (see HsptCPU.dead). */
static uint8_t *hspt_code_base(HsptCPU *hc)
{
    return hspt_cpu_off_shadow(hc) ? hc->dead : hc->cur->base;
}

/*
 * Point the vCPU's generated code at its shadow, on its own thread, and
 * have it look up softmmu-only blocks while it keeps off its shadow or
 * runs a young context in the nursery.
 */
static void hspt_cpu_load_code_base(CPUState *cpu, HsptCPU *hc)
{
    hspt_set_softmmu_code(cpu, hspt_cpu_off_shadow(hc) ||
                               hc->cur == hc->nursery);
    hspt_set_code_base(hspt_code_base(hc));
}

/*
 * An unmap failed (the host is out of memory or of VMAs) and the old
 * mapping may still be there. The vCPU stops using its spaces and
 * continues on softmmu: safe, only slower. Its own thread switches at
 * once; otherwise the vCPU is not running guest code (QEMU runs TLB
 * flushes of a running vCPU on its thread) and switches when it resumes.
 */
static void hspt_cpu_give_up(HsptCPU *hc, int err)
{
    CPUState *cpu = qemu_get_cpu(hc - hspt_cpus);

    if (!hc->given_up) {
        qatomic_set(&hc->given_up, true);
        qatomic_inc(&hspt_stats.cpus_given_up);
        warn_report("hspt: cannot unmap shadow pages of vCPU %td: %s; "
                    "it continues on softmmu", hc - hspt_cpus, strerror(err));
    }
    if (cpu && qemu_cpu_is_self(cpu)) {
        hspt_cpu_load_code_base(cpu, hc);
    } else if (cpu) {
        cpu_exit(cpu);
    }
}

static void hspt_reserve_or_give_up(void *addr, size_t len)
{
    HsptCPU *hc = hspt_cpu_of_addr(addr);

    assert(hc);
    /* Nothing reads a given-up shadow: leave it, do not fail again. */
    if (qatomic_read(&hc->given_up)) {
        return;
    }
    if (!hspt_reserve(addr, len)) {
        int err = errno;

        trace_hspt_unmap_error(addr, len, err);
        hspt_cpu_give_up(hc, err);
    }
}

bool hspt_cpu_given_up(CPUState *cpu)
{
    return qatomic_read(&hspt_cpu(cpu)->given_up);
}

void hspt_cpu_init(CPUState *cpu)
{
    HsptCPU *hc = hspt_cpu(cpu);
    /* every space, and the never-mapped one after them (HsptCPU.dead) */
    size_t size = (hspt_nspaces_all + 1) * hspt_space_size();
    void *p;

    p = hspt_reserve_no_dump(mmap(NULL, size, PROT_NONE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                                  -1, 0), size);
    if (p == MAP_FAILED) {
        error_report("hspt: cannot reserve %zu GiB of address space for "
                     "vCPU %d: %s", size >> 30, cpu->cpu_index,
                     strerror(errno));
        exit(1);
    }
    hc->base = p;
    hc->size = size;
    hc->spaces = g_new0(HsptSpace, hspt_nspaces_all);
    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        hc->spaces[i].base = hc->base + i * hspt_space_size();
    }
    hc->dead = hc->base + hspt_nspaces_all * hspt_space_size();
    hc->own_jc = cpu->tb_jmp_cache;
    hc->cur = hc->last_grown = &hc->spaces[0];
    if (!hspt_space_alloc(hc->cur)) {
        error_report("hspt: cannot allocate shadow bookkeeping for vCPU %d",
                     cpu->cpu_index);
        exit(1);
    }
    if (hspt_guest_ram_unmappable()) {
        warn_report_once("hspt: the guest RAM cannot be shadow-mapped; "
                         "the vCPUs run on softmmu");
        qatomic_set(&hc->given_up, true);
    }
    if (hspt_nspaces_all > hspt_nspaces) {
        hc->nursery = &hc->spaces[hspt_nspaces];
        if (!hspt_space_alloc(hc->nursery)) {
            /* Then every context gets a space at once. */
            warn_report_once("hspt: out of memory for shadow bookkeeping; "
                             "no nursery");
            qatomic_inc(&hspt_stats.space_alloc_failures);
            hc->nursery = NULL;
        }
    }
    hc->reval = g_new(HsptRevalidate, HSPT_REVALIDATE_MAX);
    hc->reval_work = g_new(HsptRevalidate, HSPT_REVALIDATE_MAX);
    /* a batch's own failures, and as many unmapped ahead */
    hc->reval_failed = g_new(uint32_t, 2 * HSPT_REVALIDATE_MAX);
    hc->units = g_new(HsptBlock, HSPT_REVALIDATE_MAX);
}

void hspt_cpu_destroy(CPUState *cpu)
{
    HsptCPU *hc = hspt_cpu(cpu);

    if (!hc->base) {
        return;
    }
    qemu_mutex_lock(&hspt_lock);
    /* Upstream frees the current jump cache after this. */
    qatomic_set(&cpu->tb_jmp_cache, hc->own_jc);
    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        qatomic_sub(&hspt_stats.mapped_pages, hc->spaces[i].n_mapped);
        qatomic_sub(&hspt_stats.parked_pages, hc->spaces[i].n_parked);
        for (unsigned s = 0; s < hspt_nslots; s++) {
            qatomic_sub(&hspt_stats.vmas, hc->spaces[i].slot[s].vmas);
        }
        hspt_space_free(&hc->spaces[i]);
    }
    g_free(hc->spaces);
    g_free(hc->reval);
    g_free(hc->reval_work);
    g_free(hc->reval_failed);
    g_free(hc->units);
    munmap(hc->base, hc->size);
    memset(hc, 0, sizeof(*hc));
    qemu_mutex_unlock(&hspt_lock);
}

/*
 * Generated code addresses the current space through %gs or the
 * thread-local slot bases. Only this thread's base changes; it is re-set
 * when a (round-robin) thread switches to another vCPU or the vCPU to
 * another space.
 */
void hspt_cpu_exec_enter(CPUState *cpu)
{
    /* Every page flush revalidates before guest code runs again. */
    HsptCPU *hc = hspt_cpu(cpu);

    g_assert(hc->n_reval == 0);
    if (hc->held_for_migration != hspt_held_for_migration()) {
        hc->held_for_migration = !hc->held_for_migration;
        trace_hspt_migration_hold(cpu->cpu_index, hc->held_for_migration);
        if (hc->held_for_migration) {
            qatomic_inc(&hspt_stats.migration_holds);
        }
    }
    hspt_cpu_load_code_base(cpu, hc);
}

/*
 * VMAs a slot may have added to the process, an estimate from above: an
 * mmap or mprotect of a range splits at most two VMAs. Unmapping a page
 * whose neighbours are both unmapped gives two back (its own VMA merges
 * with the reservations on either side); a wholesale flush returns the
 * region to a single VMA.
 */
static void hspt_account_vmas(HsptSlot *slot, unsigned n)
{
    slot->vmas += n;
    qatomic_add(&hspt_stats.vmas, n);
}

static void hspt_unaccount_vmas(HsptSlot *slot, unsigned n)
{
    n = MIN(n, slot->vmas);
    slot->vmas -= n;
    qatomic_sub(&hspt_stats.vmas, n);
}

/*
 * Whatever the history, each run of mapped or parked pages splits the
 * reservation once and holds at most one VMA per page: the running
 * estimate, which adds two for every remap inside a run, never needs to
 * exceed that. A parked page adds at most one such run to those of the
 * mapped pages.
 */
static void hspt_clamp_vmas(HsptSlot *slot)
{
    uint32_t bound = slot->n_mapped + slot->n_runs + 2 * slot->n_parked;

    if (slot->vmas > bound) {
        hspt_unaccount_vmas(slot, slot->vmas - bound);
    }
}

static unsigned hspt_slot_runs_around(HsptSlot *slot, uint32_t va_pfn,
                                      size_t npages)
{
    return hspt_runs_around(slot->mapped, hspt_slot_pages(), va_pfn, npages);
}

/* The slot holds no mapping: its reservation is one VMA again. */
static void hspt_slot_vmas_reset(HsptSlot *slot)
{
    qatomic_sub(&hspt_stats.vmas, slot->vmas);
    slot->vmas = 0;
}

/*
 * A range of the slot was reserved again (hspt_slot_forget_range()): it
 * may have split a mapping, unless nothing is mapped any more.
 */
static void hspt_account_rereserved(HsptSlot *slot)
{
    if (slot->n_mapped || slot->n_parked) {
        hspt_account_vmas(slot, 2);
        hspt_clamp_vmas(slot);
    } else {
        hspt_slot_vmas_reset(slot);
    }
}

/*
 * Whether the reservation, not a mapping (parked or not), borders guest
 * page PFN. Below page 0 lies whatever precedes the slot: count it as a
 * mapping.
 */
static bool hspt_slot_reserved(HsptSlot *slot, int64_t pfn)
{
    return pfn >= 0 &&
           (pfn >= hspt_slot_pages() ||
            (!test_bit(pfn, slot->mapped) && !test_bit(pfn, slot->parked)));
}

/* Both neighbours of PFN reserved: its VMA is exactly that page. */
static bool hspt_slot_page_isolated(HsptSlot *slot, uint32_t pfn)
{
    return hspt_slot_reserved(slot, (int64_t)pfn - 1) &&
           hspt_slot_reserved(slot, (int64_t)pfn + 1);
}

/* Host address of guest VA 0 in slot S of space SP. */
static uint8_t *hspt_slot_base(HsptSpace *sp, unsigned s)
{
    return sp->base + (uint64_t)s * HSPT_SLOT_SIZE;
}

/* The first guest page at or after PFN that SLOT maps (or the slot size). */
static unsigned long hspt_slot_next_mapped(HsptSlot *slot, unsigned long pfn)
{
    return hspt_find_next_sparse(slot->mapped, slot->mapped_summary,
                                 hspt_slot_pages(), pfn);
}

/*
 * Unmap one mapped page. PARK: make it inaccessible with mprotect() and
 * keep the mapping of its RAM page, which costs a quarter of replacing it
 * with the reservation and lets a refill of the same RAM page use
 * mprotect() too; a parked page is unmapped for everything else. Slot
 * flushes do not park, so that they leave nothing behind.
 */
static void hspt_slot_unmap_page(HsptSpace *sp, HsptSlot *slot,
                                 uint8_t *base, uint32_t va_pfn, bool park)
{
    uint8_t *addr = base + ((uint64_t)va_pfn << qemu_target_page_bits());
    unsigned runs = hspt_slot_runs_around(slot, va_pfn, 1);
    bool isolated = hspt_slot_page_isolated(slot, va_pfn);

    park = park && mprotect(addr, qemu_target_page_size(), PROT_NONE) == 0;
    if (!park) {
        hspt_reserve_or_give_up(addr, qemu_target_page_size());
    }
    hspt_whole_drop(&slot->whole, va_pfn, 1);
    clear_bit(va_pfn, slot->mapped);
    slot->n_runs += hspt_slot_runs_around(slot, va_pfn, 1) - runs;
    clear_bit(va_pfn, slot->writable);
    slot->n_mapped--;
    sp->n_mapped--;
    if (park) {
        set_bit(va_pfn, slot->parked);
        slot->n_parked++;
        sp->n_parked++;
        qatomic_inc(&hspt_stats.parks);
        qatomic_inc(&hspt_stats.parked_pages);
        if (!isolated) {
            hspt_account_vmas(slot, 2); /* may split a larger mapping */
        }
    } else if (!slot->n_mapped && !slot->n_parked) {
        hspt_slot_vmas_reset(slot);     /* adjacent reservations merge */
    } else if (isolated) {
        hspt_unaccount_vmas(slot, 2);
    } else if (!hspt_slot_reserved(slot, (int64_t)va_pfn - 1) &&
               !hspt_slot_reserved(slot, (int64_t)va_pfn + 1)) {
        hspt_account_vmas(slot, 2);     /* may split a larger mapping */
    }
    hspt_clamp_vmas(slot);
    qatomic_dec(&hspt_stats.mapped_pages);
    qatomic_inc(&hspt_stats.page_flushes);
}

/*
 * The parked pages of [VA_PFN, VA_PFN + NPAGES) were mapped over; returns
 * how many there were.
 */
static unsigned hspt_slot_unpark(HsptSpace *sp, HsptSlot *slot,
                                 uint32_t va_pfn, size_t npages)
{
    unsigned n = 0;

    if (!slot->n_parked) {
        return 0;
    }
    for (size_t i = 0; i < npages; i++) {
        if (test_and_clear_bit(va_pfn + i, slot->parked)) {
            slot->n_parked--;
            sp->n_parked--;
            qatomic_dec(&hspt_stats.parked_pages);
            n++;
        }
    }
    return n;
}

/*
 * Forget the pages of [VA_PFN, VA_PFN + NPAGES) that SLOT of SP maps or
 * parks, once the range is reserved again. VMA accounting is the caller's.
 */
static void hspt_slot_forget_range(HsptSpace *sp, HsptSlot *slot,
                                   uint32_t va_pfn, size_t npages)
{
    unsigned runs = hspt_slot_runs_around(slot, va_pfn, npages);

    hspt_whole_drop(&slot->whole, va_pfn, npages);
    hspt_slot_unpark(sp, slot, va_pfn, npages);
    for (size_t i = 0; i < npages; i++) {
        if (test_and_clear_bit(va_pfn + i, slot->mapped)) {
            clear_bit(va_pfn + i, slot->writable);
            slot->n_mapped--;
            sp->n_mapped--;
            qatomic_dec(&hspt_stats.mapped_pages);
        }
    }
    slot->n_runs += hspt_slot_runs_around(slot, va_pfn, npages) - runs;
}

/* Reserve [VA_PFN, VA_PFN + NPAGES) of slot S of SP again and forget it. */
static void hspt_slot_rereserve(HsptSpace *sp, unsigned s, uint32_t va_pfn,
                                size_t npages)
{
    unsigned bits = qemu_target_page_bits();

    hspt_reserve_or_give_up(hspt_slot_base(sp, s) +
                            ((uint64_t)va_pfn << bits), npages << bits);
    hspt_slot_forget_range(sp, &sp->slot[s], va_pfn, npages);
    hspt_account_rereserved(&sp->slot[s]);
}

/*
 * Page-flush the run of NPAGES mapped pages from VA_PFN in slot S of SP
 * (or a large page's range, gaps and all) with one call (a single page
 * with exact VMA accounting); returns how many pages it unmapped.
 */
static uint32_t hspt_slot_unmap_run(HsptSpace *sp, unsigned s,
                                    uint32_t va_pfn, size_t npages)
{
    HsptSlot *slot = &sp->slot[s];
    uint32_t before = slot->n_mapped;

    if (npages == 1) {
        hspt_slot_unmap_page(sp, slot, hspt_slot_base(sp, s), va_pfn, true);
        return 1;
    }
    hspt_slot_rereserve(sp, s, va_pfn, npages);
    qatomic_add(&hspt_stats.page_flushes, before - slot->n_mapped);
    return before - slot->n_mapped;
}

/* SP becomes current: start a new flush epoch if the current one is over. */
static void hspt_space_next_flush_epoch(HsptSpace *sp)
{
    int64_t now = get_clock();

    if (now - sp->flush_epoch_start >= HSPT_HOT_EPOCH_NS) {
        sp->flush_epoch++;
        sp->flush_epoch_start = now;
    }
}

/* A page flush (not a region flush) of SP dropped the mapping of VA_PFN. */
static void hspt_count_page_flush(HsptSpace *sp, HsptSlot *slot,
                                  uint32_t va_pfn)
{
    if (hspt_flush_count_inc(&slot->page_flushes[va_pfn], sp->flush_epoch,
                             HSPT_HOT_PAGE_FLUSHES)) {
        slot->has_hot_pages = true;
        qatomic_inc(&hspt_stats.hot_pages);
    }
}

static bool hspt_slot_page_hot(HsptSlot *slot, uint32_t va_pfn)
{
    return hspt_flush_hot(slot->page_flushes[va_pfn]);
}

/*
 * Queue for prefill the pages that FROM maps in the privileged views (the
 * kernel's working set, mostly global pages) when TO has none there: a
 * fresh context would otherwise take a signal per kernel page.
 */
static void hspt_queue_prefill(HsptCPU *hc, HsptSpace *from, HsptSpace *to)
{
    size_t npages = hspt_slot_pages();

    for (int idx = 0; idx < 16; idx++) {
        int s = hspt_slot_of_idx[idx];
        HsptSlot *fs;

        if (s < 0 || !(HSPT_PREFILL_IDX_MASK & (1 << idx)) ||
            to->slot[s].n_mapped || !from->slot[s].mapped) {
            continue;
        }
        fs = &from->slot[s];
        for (unsigned long pfn = hspt_slot_next_mapped(fs, 0);
             pfn < npages && hc->n_reval < hspt_config.window;
             pfn = hspt_slot_next_mapped(fs, pfn + 1)) {
            hc->reval[hc->n_reval++] = (HsptRevalidate) {
                .page = (uint64_t)pfn << qemu_target_page_bits(),
                .npages = 1, .mmu_idx = idx, .prefill = true };
        }
    }
}

bool hspt_page_is_hot(CPUState *cpu, int mmu_idx, uint64_t va)
{
    HsptSpace *sp = hspt_cpu(cpu)->cur;

    return hspt_slot_page_hot(&sp->slot[hspt_slot_of_idx[mmu_idx]],
                              va >> qemu_target_page_bits());
}

uint64_t hspt_run_end(CPUState *cpu)
{
    return hspt_cpu(cpu)->run_end;
}

void hspt_set_run_end(CPUState *cpu, uint64_t page_idx)
{
    hspt_cpu(cpu)->run_end = page_idx;
}

/* A space gets another context: its pages start afresh. */
static void hspt_space_forget_hot_pages(HsptSpace *sp)
{
    for (unsigned s = 0; s < hspt_nslots; s++) {
        HsptSlot *slot = &sp->slot[s];

        if (slot->has_hot_pages) {
            madvise(slot->page_flushes, hspt_slot_pages(), MADV_DONTNEED);
            slot->has_hot_pages = false;
        }
    }
}

static void hspt_slot_forget_blocks(HsptSlot *slot)
{
    hspt_lp_reset(&slot->lp);
    slot->n_blocks = 0;
    slot->blocks_overflow = false;
}

static bool hspt_slot_has_block(HsptSlot *slot, uint32_t va_pfn,
                                uint32_t npages)
{
    for (unsigned i = 0; i < slot->n_blocks; i++) {
        if (slot->blocks[i].va_pfn == va_pfn &&
            slot->blocks[i].npages == npages) {
            return true;
        }
    }
    return false;
}

static void hspt_slot_add_block(HsptSlot *slot, uint32_t va_pfn,
                                uint32_t npages)
{
    if (hspt_slot_has_block(slot, va_pfn, npages)) {
        return;
    }
    if (slot->n_blocks == HSPT_SLOT_BLOCKS) {
        slot->blocks_overflow = true;
        return;
    }
    slot->blocks[slot->n_blocks++] = (HsptBlock) { va_pfn, npages };
}

static int hspt_block_cmp(const void *a, const void *b)
{
    const HsptBlock *x = a, *y = b;

    return x->va_pfn < y->va_pfn ? -1 : x->va_pfn > y->va_pfn;
}

/*
 * Unmap every page of slot S of SP. Parked pages are inaccessible already
 * and may stay, unless WIPE: then the slot is left as one reservation
 * (needed when the RAM layout changes, since no parked page may outlive
 * the RAMBlock it maps, and to give VMAs back).
 */
static void hspt_slot_unmap_all(HsptSpace *sp, unsigned s, bool wipe)
{
    HsptSlot *slot = &sp->slot[s];
    uint8_t *base = hspt_slot_base(sp, s);
    size_t npages = hspt_slot_pages();

    wipe = wipe && slot->n_parked;
    hspt_slot_forget_blocks(slot);
    hspt_whole_reset(&slot->whole);
    if (slot->n_mapped == 0 && !wipe) {
        return;
    }
    trace_hspt_flush_region(base, slot->n_mapped);
    if (slot->n_mapped <= HSPT_FLUSH_PAGEWISE_MAX && !wipe) {
        for (unsigned long pfn = hspt_slot_next_mapped(slot, 0);
             pfn < npages; pfn = hspt_slot_next_mapped(slot, pfn + 1)) {
            hspt_slot_unmap_page(sp, slot, base, pfn, false);
        }
    } else {
        hspt_reserve_or_give_up(base, HSPT_GUEST_VA_SIZE);
        hspt_slot_vmas_reset(slot);
        qatomic_sub(&hspt_stats.mapped_pages, slot->n_mapped);
        sp->n_mapped -= slot->n_mapped;
        hspt_zero_sparse(slot->mapped, slot->writable, slot->mapped_summary,
                         npages);
        slot->n_mapped = 0;
        slot->n_runs = 0;
        if (slot->n_parked) {
            bitmap_zero(slot->parked, npages);
            qatomic_sub(&hspt_stats.parked_pages, slot->n_parked);
            sp->n_parked -= slot->n_parked;
            slot->n_parked = 0;
        }
    }
    qatomic_inc(&hspt_stats.region_flushes);
}

static void hspt_slot_flush(HsptSpace *sp, unsigned s)
{
    hspt_slot_unmap_all(sp, s, false);
}

/*
 * A page flush of PAGE, inside a large guest page filled into slot S of SP
 * since its last flush: that large page's TLB entry goes, so all pages
 * filled from it go, in one call. Up to 0.7.2 the whole slot went: a
 * guest with highmem flushes a kmap slot above its linear map at each
 * access to a highmem page, and every such flush emptied the kernel's
 * view (-m 1G: 115 000 slot flushes and 950 000 signals in a boot).
 * Returns the first page after the large page.
 */
static uint32_t hspt_slot_flush_large_page(HsptSpace *sp, unsigned s,
                                           uint32_t page)
{
    HsptSlot *slot = &sp->slot[s];
    unsigned bits = qemu_target_page_bits();
    uint32_t first, va_pfn, npages, n = 0;
    uint64_t size;

    hspt_lp_extent(&slot->lp, page, &first, &size);
    hspt_lp_forget(&slot->lp, first, size);
    va_pfn = first >> bits;
    npages = size >> bits;
    for (unsigned i = 0; i < slot->n_blocks; i++) {
        HsptBlock b = slot->blocks[i];

        if (b.va_pfn + b.npages <= va_pfn || b.va_pfn >= va_pfn + npages) {
            slot->blocks[n++] = b;
        }
    }
    slot->n_blocks = n;
    if (find_next_bit(slot->mapped, va_pfn + (size_t)npages, va_pfn) <
        va_pfn + (size_t)npages) {
        trace_hspt_flush_large_page(s, first, size);
        hspt_slot_unmap_run(sp, s, va_pfn, npages);
        qatomic_inc(&hspt_stats.large_page_flushes);
    }
    return va_pfn + npages;
}

/* Flush SP and give back all its VMAs (also its parked pages'). */
static void hspt_space_flush(HsptSpace *sp)
{
    sp->stale = false;
    sp->n_deferred = 0;
    for (unsigned s = 0; s < hspt_nslots; s++) {
        hspt_slot_unmap_all(sp, s, true);
    }
}

/*
 * Unmap the pages of slot S of SP whose guest translation is tied to an
 * ASID (a TLBIASID of SP's ASID); global pages stay, as they do in a TLB.
 * Returns how many stay.
 */
static uint32_t hspt_slot_drop_not_global(HsptSpace *sp, unsigned s)
{
    HsptSlot *slot = &sp->slot[s];
    unsigned bits = qemu_target_page_bits();
    size_t npages = hspt_slot_pages();
    uint32_t kept = 0;
    unsigned long pfn, end;

    for (pfn = hspt_slot_next_mapped(slot, 0); pfn < npages;
         pfn = hspt_slot_next_mapped(slot, end)) {
        end = pfn + 1;
        if (test_bit(pfn, slot->global)) {
            kept++;
            continue;
        }
        if (hspt_lp_covers(&slot->lp, pfn << bits)) {
            /* Maybe part of a large page mapped whole: all of it goes. */
            end = hspt_slot_flush_large_page(sp, s, pfn << bits);
            continue;
        }
        while (end < npages && test_bit(end, slot->mapped) &&
               !test_bit(end, slot->global) &&
               !hspt_lp_covers(&slot->lp, end << bits)) {
            end++;
        }
        hspt_slot_unmap_run(sp, s, pfn, end - pfn);
    }
    return kept;
}

static uint32_t hspt_space_drop_not_global(HsptSpace *sp)
{
    uint32_t kept = 0;

    for (unsigned s = 0; s < hspt_nslots; s++) {
        kept += hspt_slot_drop_not_global(sp, s);
    }
    return kept;
}

/*
 * A page flush of SP while another space is current: no generated code
 * reaches SP before it becomes current again, and then the page is looked
 * up afresh (hspt_queue_deferred()), as after a guest TLBIALL. Most such
 * flushes are TLBIMVAAs made for another process (the guest kit's kernels,
 * on erratum 720789, flush every copy-on-write and access-flag fault of a
 * child that way, for all ASIDs), which leave SP's page tables as they
 * were.
 */
static void hspt_defer_page_flush(HsptSpace *sp, unsigned s, uint32_t va_pfn)
{
    qatomic_inc(&hspt_stats.deferred_flushes);
    if (sp->stale) {
        return;                 /* all of it is looked up again anyway */
    }
    if (sp->n_deferred == HSPT_DEFERRED_MAX) {
        sp->stale = true;
        sp->n_deferred = 0;
        return;
    }
    sp->deferred[sp->n_deferred++] = hspt_page_key(s, va_pfn);
}

/*
 * SP becomes current: queue its deferred page flushes for revalidation, or
 * unmap them if the queue is full.
 */
static void hspt_queue_deferred(HsptCPU *hc, HsptSpace *sp)
{
    unsigned bits = qemu_target_page_bits();

    for (unsigned i = 0; i < sp->n_deferred; i++) {
        uint32_t va_pfn = hspt_page_key_pfn(sp->deferred[i]);
        unsigned s = hspt_page_key_slot(sp->deferred[i]);
        HsptSlot *slot = &sp->slot[s];

        if (!test_bit(va_pfn, slot->mapped)) {
            continue;
        }
        if (hc->n_reval < HSPT_REVALIDATE_MAX) {
            hc->reval[hc->n_reval++] = (HsptRevalidate) {
                .page = (uint64_t)va_pfn << bits, .npages = 1,
                .mmu_idx = hspt_idx_of_slot[s], .page_flush = true };
        } else {
            hspt_slot_unmap_page(sp, slot, hspt_slot_base(sp, s), va_pfn,
                                 true);
            hspt_count_page_flush(sp, slot, va_pfn);
        }
    }
    sp->n_deferred = 0;
}

/*
 * Whether a page flush of PAGE in slot S of HC's spaces has anything to
 * do, looked at without hspt_lock. Most have nothing (a guest on
 * erratum 720789 flushes each page of every ASID, each in all views), and
 * the lock would cost more than the look. Page flushes run on the vCPU's
 * own thread, which alone maps pages and flushes whole slots; other
 * threads only write-protect pages, or unmap one and clear its bit after
 * the system call returned. So a page this does not find is gone from
 * the host as well.
 */
static bool hspt_page_flush_needed(HsptCPU *hc, unsigned s, uint64_t page)
{
    uint32_t va_pfn = page >> qemu_target_page_bits();

    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        HsptSlot *slot = &hc->spaces[i].slot[s];

        if (qatomic_read(&slot->n_mapped) &&
            (hspt_lp_covers(&slot->lp, page) ||
             (qatomic_read(&slot->mapped[BIT_WORD(va_pfn)]) &
              BIT_MASK(va_pfn)))) {
            return true;
        }
    }
    return false;
}

void hspt_set_page_flush_asid(CPUState *cpu, bool by_asid, uint8_t asid)
{
    HsptCPU *hc = hspt_cpu(cpu);

    hc->page_flush_by_asid = by_asid;
    hc->page_flush_asid = asid;
}

/*
 * A TLBIMVA names one ASID, and a tagged TLB keeps the other ASIDs'
 * non-global entries for the VA; softmmu drops the VA only because its
 * TLB holds just the current context. So a space keyed to another ASID
 * keeps the page unless its translation is global.
 */
static bool hspt_page_flush_spares(const HsptCPU *hc, const HsptSpace *sp,
                                   const HsptSlot *slot, uint32_t va_pfn)
{
    return hc->page_flush_by_asid && sp->keyed &&
           (sp->key.v[1] & 0xff) != hc->page_flush_asid &&
           !test_bit(va_pfn, slot->global);
}

void hspt_unmap_page_locked(CPUState *cpu, int mmu_idx, uint64_t page)
{
    HsptCPU *hc = hspt_cpu(cpu);
    int s = hspt_slot_of_idx[mmu_idx];
    uint32_t va_pfn = page >> qemu_target_page_bits();

    if (s < 0 || qatomic_read(&hc->given_up)) {
        return;
    }
    trace_hspt_flush_page(cpu->cpu_index, mmu_idx, page);
    if (!hspt_page_flush_needed(hc, s, page)) {
        return;
    }
    qemu_mutex_lock(&hspt_lock);
    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        HsptSpace *sp = &hc->spaces[i];
        HsptSlot *slot = &sp->slot[s];

        if (slot->n_mapped == 0) {
            continue;
        }
        if (hspt_lp_covers(&slot->lp, page)) {
            /* Part of a large guest page: the whole entry goes. */
            hspt_slot_flush_large_page(sp, s, page);
        } else if (test_bit(va_pfn, slot->mapped)) {
            if (hspt_page_flush_spares(hc, sp, slot, va_pfn)) {
                qatomic_inc(&hspt_stats.asid_page_kept);
            } else if (sp == hc->cur && hc->n_reval < HSPT_REVALIDATE_MAX) {
                hc->reval[hc->n_reval++] = (HsptRevalidate) {
                    .page = page, .npages = 1, .mmu_idx = mmu_idx,
                    .page_flush = true };
            } else if (sp != hc->cur) {
                hspt_defer_page_flush(sp, s, va_pfn);
            } else {
                hspt_slot_unmap_page(sp, slot, hspt_slot_base(sp, s), va_pfn,
                                     true);
                hspt_count_page_flush(sp, slot, va_pfn);
            }
        }
    }
    qemu_mutex_unlock(&hspt_lock);
}

/*
 * A large page mapped whole stays only if its fresh lookup mapped the same
 * large page again (which records the block anew); else all of it goes.
 */
static void hspt_block_revalidated(HsptCPU *hc, unsigned s, uint32_t va_pfn,
                                   uint32_t npages, bool keep)
{
    HsptSpace *sp = hc->cur;

    qatomic_inc(&hspt_stats.revalidated);
    qemu_mutex_lock(&hspt_lock);
    if (keep && hspt_slot_has_block(&sp->slot[s], va_pfn, npages)) {
        qemu_mutex_unlock(&hspt_lock);
        return;
    }
    hspt_slot_rereserve(sp, s, va_pfn, npages);
    qatomic_inc(&hspt_stats.revalidate_unmaps);
    qemu_mutex_unlock(&hspt_lock);
}

void hspt_revalidate_give_up(CPUState *cpu, int mmu_idx)
{
    HsptCPU *hc = hspt_cpu(cpu);

    qemu_mutex_lock(&hspt_lock);
    hspt_slot_flush(hc->cur, hspt_slot_of_idx[mmu_idx]);
    qemu_mutex_unlock(&hspt_lock);
}

/* The queued page flushes of the current space, still mapped ones only. */
const HsptRevalidate *hspt_take_revalidations(CPUState *cpu, unsigned *n)
{
    HsptCPU *hc = hspt_cpu(cpu);

    *n = 0;
    /* Only this thread queues; most flushes and switches queue nothing. */
    if (hc->revalidating || hc->n_reval == 0) {
        return NULL;
    }
    if (qatomic_read(&hc->given_up)) {
        hc->n_reval = 0;        /* nothing is kept, nothing needs to go */
        return NULL;
    }
    qemu_mutex_lock(&hspt_lock);
    for (unsigned i = 0; i < hc->n_reval; i++) {
        HsptSlot *slot = &hc->cur->slot[hspt_slot_of_idx[hc->reval[i].mmu_idx]];

        /* Revalidate what is still mapped, prefill what is not. */
        if (test_bit(hc->reval[i].page >> qemu_target_page_bits(),
                     slot->mapped) != hc->reval[i].prefill) {
            hc->reval_work[(*n)++] = hc->reval[i];
        }
    }
    hc->n_reval = 0;
    hc->revalidating = *n != 0;
    qemu_mutex_unlock(&hspt_lock);
    return hc->reval_work;
}

bool hspt_page_mapped_alone(CPUState *cpu, int mmu_idx, uint64_t va)
{
    HsptSlot *slot = &hspt_cpu(cpu)->cur->slot[hspt_slot_of_idx[mmu_idx]];

    /* Only this thread maps pages and large pages. */
    return test_bit(va >> qemu_target_page_bits(), slot->mapped) &&
           !hspt_lp_covers(&slot->lp, va);
}

/*
 * Page VA_PFN of slot S of the current space goes when the batch is done
 * (hspt_unmap_failed_lookups()), if it is still mapped; PAGE_FLUSH: it
 * counts as a page flush of it. No guest code runs before that.
 */
static bool hspt_queue_failed_locked(HsptCPU *hc, unsigned s, uint32_t va_pfn,
                                     bool page_flush)
{
    HsptSlot *slot = &hc->cur->slot[s];

    if (!test_bit(va_pfn, slot->mapped)) {
        return false;
    }
    if (page_flush) {
        hspt_count_page_flush(hc->cur, slot, va_pfn);
    }
    hc->reval_failed[hc->n_reval_failed++] = hspt_page_key(s, va_pfn);
    return true;
}

bool hspt_unmap_ahead(CPUState *cpu, int mmu_idx, uint64_t va)
{
    HsptCPU *hc = hspt_cpu(cpu);
    bool queued = false;

    qemu_mutex_lock(&hspt_lock);
    /* Its own page flush will not find it: count it now. */
    if (hc->n_reval_failed < HSPT_REVALIDATE_MAX &&
        hspt_queue_failed_locked(hc, hspt_slot_of_idx[mmu_idx],
                                 va >> qemu_target_page_bits(), true)) {
        qatomic_inc(&hspt_stats.unmapped_ahead);
        queued = true;
    }
    qemu_mutex_unlock(&hspt_lock);
    return queued;
}

/*
 * Unmap the pages of the current space whose lookup failed in the batch,
 * one call per run of adjacent pages: what a TLBIALL at a process's exit
 * leaves behind comes in runs (stack, heap, data), and each call costs as
 * much as one for a single page.
 */
static void hspt_unmap_failed_lookups(HsptCPU *hc)
{
    HsptSpace *sp = hc->cur;
    unsigned n = hspt_sort_unique(hc->reval_failed, hc->n_reval_failed);

    hc->n_reval_failed = 0;
    qemu_mutex_lock(&hspt_lock);
    for (unsigned i = 0, len; i < n; i += len) {
        uint32_t va_pfn = hspt_page_key_pfn(hc->reval_failed[i]);
        unsigned s = hspt_page_key_slot(hc->reval_failed[i]);

        len = hspt_run_length(hc->reval_failed, n, i);
        if (find_next_bit(sp->slot[s].mapped, va_pfn + len, va_pfn) <
            va_pfn + len) {     /* else the slot was flushed meanwhile */
            qatomic_add(&hspt_stats.revalidate_unmaps,
                        hspt_slot_unmap_run(sp, s, va_pfn, len));
        }
    }
    qemu_mutex_unlock(&hspt_lock);
}

/*
 * Whether page VA_PFN of SLOT is still mapped with the rights PROT gives
 * (a deferred rights change of it is still due): a flush or another fill
 * in the batch made its own system call and left other bookkeeping.
 */
static bool hspt_rights_due(HsptSlot *slot, uint32_t va_pfn, int prot)
{
    return test_bit(va_pfn, slot->mapped) &&
           test_bit(va_pfn, slot->writable) == !!(prot & PROT_WRITE);
}

/* Make the deferred rights change of HC, one call per run still due. */
static void hspt_apply_rights_locked(HsptCPU *hc)
{
    HsptRightsRun *r = &hc->rights;
    HsptSlot *slot = &r->space->slot[r->slot];
    unsigned bits = qemu_target_page_bits();
    uint32_t end = r->first + r->npages;

    for (uint32_t pfn = r->first, next; pfn < end; pfn = next) {
        next = pfn + 1;
        if (!hspt_rights_due(slot, pfn, r->prot)) {
            continue;
        }
        while (next < end && hspt_rights_due(slot, next, r->prot)) {
            next++;
        }
        if (mprotect(hspt_slot_base(r->space, r->slot) +
                     ((uint64_t)pfn << bits),
                     (size_t)(next - pfn) << bits, r->prot) < 0) {
            /* The old rights may be wider: leave the pages on softmmu. */
            trace_hspt_mmap_error(hc - hspt_cpus, (uint64_t)pfn << bits,
                                  errno);
            qatomic_inc(&hspt_stats.mmap_errors);
            hspt_slot_rereserve(r->space, r->slot, pfn, next - pfn);
        }
    }
    r->npages = 0;
}

/*
 * Change the rights of mapped page VA_PFN of slot S of the current space
 * to PROT when the revalidation batch is done, with the calls of its
 * neighbours in the batch. No guest code runs before that, and the
 * bookkeeping already says PROT: other threads (write protection) see
 * it, and a flush or fill of the page in the batch supersedes it.
 */
static void hspt_defer_rights_locked(HsptCPU *hc, unsigned s,
                                     uint32_t va_pfn, int prot)
{
    HsptRightsRun *r = &hc->rights;

    /* Batches run from the top down: most runs grow at their start. */
    if (r->npages && r->space == hc->cur && r->slot == s &&
        r->prot == prot &&
        (va_pfn + 1 == r->first || va_pfn == r->first + r->npages)) {
        r->first = MIN(r->first, va_pfn);
        r->npages++;
        qatomic_inc(&hspt_stats.rights_merged);
        return;
    }
    if (r->npages) {
        hspt_apply_rights_locked(hc);
    }
    *r = (HsptRightsRun) { .space = hc->cur, .slot = s, .first = va_pfn,
                           .npages = 1, .prot = prot };
}

void hspt_revalidations_done(CPUState *cpu)
{
    HsptCPU *hc = hspt_cpu(cpu);

    if (hc->rights.npages) {
        qemu_mutex_lock(&hspt_lock);
        hspt_apply_rights_locked(hc);
        qemu_mutex_unlock(&hspt_lock);
    }
    hspt_unmap_failed_lookups(hc);
    hc->revalidating = false;
}

/*
 * A queued page after its fresh lookup: KEEP if the lookup refilled it (or
 * found it unchanged), else it goes when the batch is done (a large page
 * mapped whole goes now).
 */
void hspt_revalidated(CPUState *cpu, const HsptRevalidate *r, bool keep)
{
    HsptCPU *hc = hspt_cpu(cpu);
    int s = hspt_slot_of_idx[r->mmu_idx];
    uint32_t va_pfn = r->page >> qemu_target_page_bits();

    if (r->npages > 1) {
        hspt_block_revalidated(hc, s, va_pfn, r->npages, keep);
        return;
    }
    if (r->prefill) {
        if (keep) {
            qatomic_inc(&hspt_stats.prefilled);
        }
        return;
    }
    qatomic_inc(&hspt_stats.revalidated);
    if (keep) {
        return;
    }
    qemu_mutex_lock(&hspt_lock);
    hspt_queue_failed_locked(hc, s, va_pfn, r->page_flush);
    qemu_mutex_unlock(&hspt_lock);
}

void hspt_flush_asid_prepare(CPUState *cpu, uint8_t asid)
{
    HsptCPU *hc = hspt_cpu(cpu);

    qemu_mutex_lock(&hspt_lock);
    set_bit(asid, hc->pending_asids);
    qemu_mutex_unlock(&hspt_lock);
}

/*
 * The full flush that carries pending TLBIASIDs (QEMU may run it later, at
 * the end of the TB for the IS forms: doing the selective flush here, not
 * earlier, also drops what was refilled from the stale softmmu TLB in
 * between). Spaces of other ASIDs keep their pages, and the spaces of a
 * flushed ASID their global ones (TLBIASID does not touch those).
 */
static bool hspt_flush_pending_asids(HsptCPU *hc)
{
    uint32_t kept = 0;

    if (find_first_bit(hc->pending_asids, 256) >= 256) {
        return false;
    }
    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        HsptSpace *sp = &hc->spaces[i];

        if (!sp->n_mapped) {
            continue;
        }
        if (!sp->keyed) {
            hspt_space_flush(sp);
        } else if (test_bit(sp->key.v[1] & 0xff, hc->pending_asids)) {
            kept += hspt_space_drop_not_global(sp);
        }
    }
    bitmap_zero(hc->pending_asids, 256);
    trace_hspt_flush_asids(hc - hspt_cpus);
    qatomic_inc(&hspt_stats.asid_flushes);
    qatomic_add(&hspt_stats.asid_kept_global, kept);
    return true;
}

void hspt_flush_all_prepare(CPUState *cpu)
{
    hspt_cpu(cpu)->guest_tlbi_all = true;
}

/*
 * Queue slot S of the current space for revalidation, a whole large page
 * as one entry, or flush the slot if that would be too many entries.
 */
static void hspt_slot_flush_or_queue(HsptCPU *hc, unsigned s)
{
    HsptSlot *slot = &hc->cur->slot[s];
    HsptBlock *units = hc->units;
    int n;

    if (slot->n_mapped == 0 || slot->blocks_overflow) {
        hspt_slot_flush(hc->cur, s);
        return;
    }
    qsort(slot->blocks, slot->n_blocks, sizeof(slot->blocks[0]),
          hspt_block_cmp);
    n = hspt_revalidation_units(slot->mapped, slot->mapped_summary,
                                hspt_slot_pages(), slot->blocks,
                                slot->n_blocks, units,
                                HSPT_REVALIDATE_MAX - hc->n_reval);
    if (n < 0) {
        hspt_slot_flush(hc->cur, s);
        return;
    }
    for (int i = 0; i < n; i++) {
        hc->reval[hc->n_reval++] = (HsptRevalidate) {
            .page = (uint64_t)units[i].va_pfn << qemu_target_page_bits(),
            .npages = units[i].npages, .mmu_idx = hspt_idx_of_slot[s] };
    }
    /* Blocks are recorded again when their fresh lookup maps them. */
    hspt_slot_forget_blocks(slot);
}

void hspt_flush_idx_locked(CPUState *cpu, uint16_t idxmap, bool full)
{
    HsptCPU *hc = hspt_cpu(cpu);
    bool guest_tlbi_all = full && hc->guest_tlbi_all;

    if (full) {
        hc->guest_tlbi_all = false;
    }
    trace_hspt_flush_idx(cpu->cpu_index, idxmap, full, guest_tlbi_all,
                         hc->in_context_switch);
    if (hc->in_context_switch || qatomic_read(&hc->given_up)) {
        /*
         * The softmmu TLB is untagged; the shadow spaces are not. A
         * given-up shadow is never read again.
         */
        return;
    }
    qemu_mutex_lock(&hspt_lock);
    if (full && hspt_flush_pending_asids(hc)) {
        qemu_mutex_unlock(&hspt_lock);
        return;
    }
    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        HsptSpace *sp = &hc->spaces[i];

        if (guest_tlbi_all && sp != hc->cur) {
            /* Not in use: revalidated when it becomes current again. */
            sp->stale = sp->n_mapped != 0;
            continue;
        }
        for (int idx = 0; idx < 16 && (sp->n_mapped || sp->n_parked);
             idx++) {
            if (!(idxmap & (1 << idx)) || hspt_slot_of_idx[idx] < 0) {
                continue;
            }
            if (guest_tlbi_all) {
                hspt_slot_flush_or_queue(hc, hspt_slot_of_idx[idx]);
            } else {
                /* Maybe a new RAM layout (memory-map commit, reset). */
                hspt_slot_unmap_all(sp, hspt_slot_of_idx[idx], full);
            }
        }
    }
    if (full && !guest_tlbi_all) {
        /*
         * Full flushes also come with register changes that bypass the
         * context hooks (reset, loadvm, SCTLR): from now on the current
         * space holds translations of a context we cannot name.
         */
        hc->cur->keyed = false;
    }
    qemu_mutex_unlock(&hspt_lock);
}

/*
 * The space of reverse-map entry R if R still is a live writable mapping
 * of RAM page RP (entries are not removed on unmap or flush), else NULL.
 */
static HsptSpace *hspt_rmap_live(HsptRmapRef r, uint32_t rp)
{
    HsptSpace *sp;
    HsptSlot *slot;

    if (r.cpu >= hspt_max_cpus || !hspt_cpus[r.cpu].spaces ||
        qatomic_read(&hspt_cpus[r.cpu].given_up) ||
        r.space >= hspt_nspaces_all || r.slot >= hspt_nslots) {
        return NULL;
    }
    sp = &hspt_cpus[r.cpu].spaces[r.space];
    slot = &sp->slot[r.slot];
    if (!slot->mapped || !test_bit(r.va_pfn, slot->writable) ||
        slot->ram_pfn[r.va_pfn] != rp) {
        return NULL;
    }
    return sp;
}

static void hspt_rmap_add(uint32_t rp, uint64_t e)
{
    HsptRmap *r;
    uint32_t j = 0;

    if (rp >= hspt_rmap_len) {
        size_t len = MAX(rp + 1, hspt_rmap_len * 2);

        hspt_rmap = g_renew(HsptRmap, hspt_rmap, len);
        memset(hspt_rmap + hspt_rmap_len, 0,
               (len - hspt_rmap_len) * sizeof(HsptRmap));
        hspt_rmap_len = len;
    }
    r = &hspt_rmap[rp];
    /* Drop stale entries, and do not add E twice. */
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->e[i] != e && hspt_rmap_live(hspt_rmap_unpack(r->e[i]), rp)) {
            r->e[j++] = r->e[i];
        }
    }
    r->n = j;
    if (r->n == r->cap) {
        r->cap = MAX(2, r->cap * 2);
        r->e = g_renew(uint64_t, r->e, r->cap);
    }
    r->e[r->n++] = e;
}

void hspt_write_protect_host_locked(CPUState *cpu, uintptr_t host,
                                    size_t length)
{
    size_t psize = qemu_target_page_size();
    unsigned bits = qemu_target_page_bits();
    ram_addr_t offset, first, last;
    uint64_t protected;
    RAMBlock *rb;

    rb = qemu_ram_block_from_host((void *)host, false, &offset);
    if (!rb) {
        return;
    }
    /* The caller's length may not count the offset into the first page. */
    first = (rb->offset + offset) >> bits;
    last = (rb->offset + MIN(offset + length + psize,
                             rb->used_length)) >> bits;

    qemu_mutex_lock(&hspt_lock);
    protected = qatomic_read(&hspt_stats.write_protects);
    for (ram_addr_t rp = first; rp < last && rp < hspt_rmap_len; rp++) {
        HsptRmap *r = &hspt_rmap[rp];
        uint32_t j = 0;

        for (uint32_t i = 0; i < r->n; i++) {
            HsptRmapRef ref = hspt_rmap_unpack(r->e[i]);
            HsptSpace *sp = hspt_rmap_live(ref, rp);
            uint8_t *base;

            if (!sp) {
                continue;       /* stale: drop */
            }
            if (ref.cpu != cpu->cpu_index) {
                r->e[j++] = r->e[i];    /* another vCPU's: its call comes */
                continue;
            }
            base = hspt_slot_base(sp, ref.slot);
            if (mprotect(base + ((uint64_t)ref.va_pfn << bits), psize,
                         PROT_READ) == 0) {
                if (!hspt_slot_page_isolated(&sp->slot[ref.slot],
                                             ref.va_pfn)) {
                    hspt_account_vmas(&sp->slot[ref.slot], 2);
                    hspt_clamp_vmas(&sp->slot[ref.slot]);
                }
                hspt_whole_drop(&sp->slot[ref.slot].whole, ref.va_pfn, 1);
                clear_bit(ref.va_pfn, sp->slot[ref.slot].writable);
                qatomic_inc(&hspt_stats.write_protects);
            } else {
                hspt_slot_unmap_page(sp, &sp->slot[ref.slot], base,
                                     ref.va_pfn, false);
            }
        }
        r->n = j;
    }
    trace_hspt_write_protect(cpu->cpu_index, first, last,
                             qatomic_read(&hspt_stats.write_protects) -
                             protected);
    qemu_mutex_unlock(&hspt_lock);
}

/* Budget exhausted: flush the least recently used space holding pages. */
static void hspt_evict(HsptCPU *hc)
{
    HsptSpace *victim = NULL;

    for (unsigned i = 0; i < hspt_nspaces_all; i++) {
        HsptSpace *sp = &hc->spaces[i];

        if (sp != hc->cur && (sp->n_mapped || sp->n_parked) &&
            (!victim || sp->last_used < victim->last_used)) {
            victim = sp;
        }
    }
    victim = victim ? victim : hc->cur;
    trace_hspt_evict(hc - hspt_cpus, victim - hc->spaces,
                     qatomic_read(&hspt_stats.vmas));
    hspt_space_flush(victim);
    qatomic_inc(&hspt_stats.evictions);
}

/* True if SLOT maps the NPAGES guest pages from VA_PFN to RAM pages RP... */
static bool hspt_slot_maps_ram(HsptSlot *slot, uint32_t va_pfn, uint32_t rp,
                               size_t npages)
{
    for (size_t i = 0; i < npages; i++) {
        if (!test_bit(va_pfn + i, slot->mapped) ||
            slot->ram_pfn[va_pfn + i] != rp + i) {
            return false;
        }
    }
    return true;
}

/*
 * True if the host pages of the NPAGES guest pages from VA_PFN map RAM
 * pages RP... already, mapped or parked: only their rights may change.
 */
static bool hspt_slot_holds_ram(HsptSlot *slot, uint32_t va_pfn, uint32_t rp,
                                size_t npages)
{
    for (size_t i = 0; i < npages; i++) {
        if ((!test_bit(va_pfn + i, slot->mapped) &&
             !test_bit(va_pfn + i, slot->parked)) ||
            slot->ram_pfn[va_pfn + i] != rp + i) {
            return false;
        }
    }
    return true;
}

/*
 * ... and writable if WRITABLE (read-only if not: a read-only fill may
 * have to take write access away).
 */
static bool hspt_slot_maps(HsptSlot *slot, uint32_t va_pfn, uint32_t rp,
                           size_t npages, bool writable)
{
    for (size_t i = 0; i < npages; i++) {
        if (test_bit(va_pfn + i, slot->writable) != writable) {
            return false;
        }
    }
    return hspt_slot_maps_ram(slot, va_pfn, rp, npages);
}

/*
 * hspt_slot_maps() for a large page, which would check its 512 pages on
 * every softmmu miss of the kernel's linear map.
 */
static bool hspt_slot_maps_cached(HsptSlot *slot, uint32_t va_pfn,
                                  uint32_t rp, size_t npages, bool writable,
                                  bool whole)
{
    if (!whole) {
        return hspt_slot_maps(slot, va_pfn, rp, npages, writable);
    }
    if (hspt_whole_maps(&slot->whole, va_pfn, npages, rp, writable)) {
        return true;
    }
    if (hspt_slot_maps(slot, va_pfn, rp, npages, writable)) {
        hspt_whole_add(&slot->whole, va_pfn, npages, rp, writable);
        return true;
    }
    return false;
}

/* A large guest page as the block caches know it. */
typedef struct HsptBlockKey {
    uint32_t first;             /* guest page number */
    uint32_t npages;
    uint32_t rp0;               /* its first RAM page, if contiguous */
} HsptBlockKey;

/*
 * The current space's slot for MMU_IDX and the key of the large guest page
 * of LG_PAGE_SIZE around PAGE, whose host address is HOST; NULL if MMU_IDX
 * has no slot or HOST is no RAM. Only the vCPU's thread changes its
 * current space, so the slot stays put; its contents need hspt_lock.
 */
static HsptSlot *hspt_block_key(CPUState *cpu, int mmu_idx, uint64_t page,
                                void *host, int lg_page_size, HsptBlockKey *k)
{
    unsigned bits = qemu_target_page_bits();
    int s = hspt_slot_of_idx[mmu_idx];
    uint32_t va_pfn = page >> bits;
    ram_addr_t offset;
    RAMBlock *rb = qemu_ram_block_from_host(host, false, &offset);

    if (s < 0 || !rb) {
        return NULL;
    }
    k->npages = 1u << (lg_page_size - bits);
    k->first = va_pfn & ~(k->npages - 1);
    k->rp0 = ((rb->offset + offset) >> bits) - (va_pfn - k->first);
    return &hspt_cpu(cpu)->cur->slot[s];
}

/*
 * What the block caches know of the large guest page of LG_PAGE_SIZE
 * around PAGE (at HOST), so that a fill need not check the block again
 * (address space, contiguity, 512 pages' dirty bits):
 * - HSPT_BLOCK_MAPPED: it is mapped whole with the rights WRITABLE (then
 *   it is recorded as a block again, as hspt_map_locked() does). A
 *   whole-block entry is added only for a block that passed those checks,
 *   and goes when any page of it changes (unmap, write protection of a
 *   page cleaned for code or dirty logging) or the slot is flushed
 *   (memory map changes, watchpoints, TLBIs in it).
 * - HSPT_BLOCK_PARTLY_CLEAN: a WRITABLE fill found clean pages in it
 *   lately (see HsptPartialCache): map the page alone.
 */
HsptBlockKnown hspt_block_known_locked(CPUState *cpu, int mmu_idx,
                                       uint64_t page, void *host,
                                       bool writable, int lg_page_size)
{
    HsptBlockKey k;
    HsptSlot *slot = hspt_block_key(cpu, mmu_idx, page, host, lg_page_size,
                                    &k);
    HsptBlockKnown known = HSPT_BLOCK_UNKNOWN;

    if (!slot) {
        return known;
    }
    qemu_mutex_lock(&hspt_lock);
    if (writable &&
        hspt_partial_known(&slot->partial, k.first, k.npages, k.rp0)) {
        known = HSPT_BLOCK_PARTLY_CLEAN;
    } else if (hspt_whole_maps(&slot->whole, k.first, k.npages, k.rp0,
                               writable)) {
        hspt_lp_add(&slot->lp, page, lg_page_size);
        hspt_slot_add_block(slot, k.first, k.npages);
        known = HSPT_BLOCK_MAPPED;
    }
    qemu_mutex_unlock(&hspt_lock);
    return known;
}

/* A WRITABLE fill found clean pages in the large guest page around PAGE. */
void hspt_note_partly_clean_locked(CPUState *cpu, int mmu_idx, uint64_t page,
                                   void *host, int lg_page_size)
{
    HsptBlockKey k;
    HsptSlot *slot = hspt_block_key(cpu, mmu_idx, page, host, lg_page_size,
                                    &k);

    if (slot) {
        qemu_mutex_lock(&hspt_lock);
        hspt_partial_add(&slot->partial, k.first, k.npages, k.rp0);
        qemu_mutex_unlock(&hspt_lock);
    }
}

void hspt_note_unmappable(CPUState *cpu, int mmu_idx, uint64_t va)
{
    trace_hspt_fill_unmappable(cpu->cpu_index, mmu_idx, va);
    qatomic_inc(&hspt_stats.unmappable);
}

/*
 * Why no shadow page can map RAM block RB, or NULL if they can: a shadow
 * page is a host page of the block's file, mapped shared.
 */
const char *hspt_ram_block_unmappable(RAMBlock *rb)
{
    if (rb->fd < 0 || !qemu_ram_is_shared(rb)) {
        return "it is not shared (share=on lets shadow pages map it)";
    }
    if (rb->page_size != qemu_real_host_page_size()) {
        return "its pages are larger than the host's";
    }
    return NULL;
}

/* The global bits only mean something for mapped pages. */
static void hspt_slot_set_global(HsptSlot *slot, uint32_t va_pfn,
                                 size_t npages, bool global)
{
    if (global) {
        bitmap_set(slot->global, va_pfn, npages);
    } else {
        bitmap_clear(slot->global, va_pfn, npages);
    }
}

HsptMapResult hspt_map_locked(CPUState *cpu, int mmu_idx, uint64_t va,
                              void *host, size_t npages, bool writable,
                              bool global, int lg_page_size, bool populate)
{
    size_t psize = qemu_target_page_size();
    unsigned bits = qemu_target_page_bits();
    uint32_t va_pfn = va >> bits;
    int s = hspt_slot_of_idx[mmu_idx];
    HsptCPU *hc = hspt_cpu(cpu);
    ram_addr_t offset;
    HsptSpace *sp;
    HsptSlot *slot;
    uint8_t *addr;
    uint32_t rp;
    RAMBlock *rb;
    HsptMapResult ret = HSPT_MAP_REFUSED;
    bool failed, rights_only, held;
    unsigned vmas = 2, runs, unparked;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    /*
     * A large guest page mapped whole is one unit for the block caches and
     * revalidation; a run of its pages (hspt_dirty_run()) is not: its
     * pages are revalidated one by one, as if filled alone.
     */
    bool whole = npages > 1 && lg_page_size > bits &&
                 npages == (size_t)1 << (lg_page_size - bits);

    if (s < 0) {
        return HSPT_MAP_REFUSED;
    }
    held = hspt_held_for_migration();
    if (hc->held_for_migration || held) {
        /* A hold that has ended ends for this vCPU at its next entry. */
        if (!held) {
            cpu_exit(cpu);
        }
        qatomic_inc(&hspt_stats.migration_refusals);
        return HSPT_MAP_REFUSED;
    }
    /*
     * Page flush counts change on this thread only: refuse hot pages, which
     * every slow-path access to them asks for, without taking the lock.
     */
    if (hspt_slot_page_hot(&hc->cur->slot[s], va_pfn)) {
        qatomic_inc(&hspt_stats.hot_refusals);
        return HSPT_MAP_REFUSED;
    }
    rb = qemu_ram_block_from_host(host, false, &offset);
    if (!rb || hspt_ram_block_unmappable(rb) ||
        offset + npages * psize > rb->used_length ||
        ((rb->offset + offset) >> bits) + npages > UINT32_MAX) {
        return HSPT_MAP_REFUSED;
    }
    rp = (rb->offset + offset) >> bits;

    qemu_mutex_lock(&hspt_lock);
    sp = hc->cur;
    slot = &sp->slot[s];
    addr = hspt_slot_base(sp, s) + va;

    if (hc->given_up) {
        goto out;
    }
    /*
     * Slow-path lookups that did not come from a shadow miss (softmmu-only
     * TBs, unaligned or page-crossing accesses, helpers) mostly find the
     * page mapped already: skip the syscall.
     */
    if (hspt_slot_maps_cached(slot, va_pfn, rp, npages, writable, whole)) {
        hspt_slot_set_global(slot, va_pfn, npages, global);
        if (lg_page_size > bits) {
            hspt_lp_add(&slot->lp, va, lg_page_size);
        }
        if (whole) {
            hspt_slot_add_block(slot, va_pfn, npages);
        }
        ret = HSPT_MAP_ALREADY;
        goto out;
    }

    /*
     * Stay well below vm.max_map_count: a mapping may split a reservation
     * and cost up to two VMAs. If other vCPUs hold the budget, leave the
     * page on softmmu.
     */
    if (qatomic_read(&hspt_stats.vmas) + 2 > hspt_vma_budget) {
        hspt_evict(hc);
        if (qatomic_read(&hspt_stats.vmas) + 2 > hspt_vma_budget) {
            goto out;
        }
    }

    /*
     * A fresh range only splits the reservations on either side; a page
     * between two reservations is its own VMA, which a remap replaces.
     */
    if (find_next_bit(slot->mapped, va_pfn + npages, va_pfn) >=
        va_pfn + npages) {
        vmas = hspt_slot_reserved(slot, (int64_t)va_pfn - 1) +
               hspt_slot_reserved(slot, (int64_t)va_pfn + npages);
    } else if (npages == 1 && hspt_slot_page_isolated(slot, va_pfn)) {
        vmas = 0;
    }
    /*
     * Only the rights change (write protection at a guest fork, or lifted
     * at the write fault after it, or a parked page refilled): mprotect
     * keeps the VMA and the host PTEs, which a MAP_FIXED mmap replaces;
     * here it costs a fifth as much.
     */
    rights_only = hspt_slot_holds_ram(slot, va_pfn, rp, npages);
    if (rights_only && npages == 1 && hc->revalidating) {
        hspt_defer_rights_locked(hc, s, va_pfn, prot);
        failed = false;
    } else if (rights_only) {
        failed = mprotect(addr, npages * psize, prot) < 0;
    } else {
        /*
         * When an access to the page follows, have the host kernel fill
         * its page-table entries now rather than in a page fault of its
         * own (seqrw: 6 % faster on a host where a kernel entry costs some
         * 4 us). Not for pages that may stay untouched (a large page
         * mapped whole, prefill, revalidation): unmapping a present entry
         * costs a host TLB flush, on every CPU the process ran on (0.5.1
         * populated every fill, and forkstorm got 1.6 times slower).
         */
        int flags = MAP_SHARED | MAP_FIXED;

        if (populate && npages <= HSPT_POPULATE_MAX_PAGES) {
            flags |= MAP_POPULATE;
        }
        failed = mmap(addr, npages * psize, prot, flags,
                      rb->fd, rb->fd_offset + offset) == MAP_FAILED;
    }
    if (failed) {
        /*
         * Leave the range reserved and on softmmu (a failed MAP_FIXED may
         * also have dropped the old mappings).
         */
        trace_hspt_mmap_error(cpu->cpu_index, va, errno);
        qatomic_inc(&hspt_stats.mmap_errors);
        hspt_slot_rereserve(sp, s, va_pfn, npages);
        goto out;
    }
    unparked = hspt_slot_unpark(sp, slot, va_pfn, npages);
    if (rights_only) {
        qatomic_add(&hspt_stats.unparks, unparked);
    }
    runs = hspt_slot_runs_around(slot, va_pfn, npages);
    hspt_account_vmas(slot, vmas);
    hspt_whole_drop(&slot->whole, va_pfn, npages);
    for (size_t i = 0; i < npages; i++) {
        if (!test_and_set_bit(va_pfn + i, slot->mapped)) {
            set_bit((va_pfn + i) / BITS_PER_LONG, slot->mapped_summary);
            slot->n_mapped++;
            sp->n_mapped++;
            qatomic_inc(&hspt_stats.mapped_pages);
        }
        slot->ram_pfn[va_pfn + i] = rp + i;
        if (writable) {
            set_bit(va_pfn + i, slot->writable);
            hspt_rmap_add(rp + i, hspt_rmap_pack((HsptRmapRef) {
                .cpu = cpu->cpu_index, .space = sp - hc->spaces,
                .slot = s, .va_pfn = va_pfn + i }));
        } else {
            clear_bit(va_pfn + i, slot->writable);
        }
    }
    hspt_slot_set_global(slot, va_pfn, npages, global);
    slot->n_runs += hspt_slot_runs_around(slot, va_pfn, npages) - runs;
    hspt_clamp_vmas(slot);
    if (lg_page_size > bits) {
        hspt_lp_add(&slot->lp, va, lg_page_size);
    }
    if (whole) {
        hspt_slot_add_block(slot, va_pfn, npages);
        hspt_whole_add(&slot->whole, va_pfn, npages, rp, writable);
    }
    trace_hspt_fill(cpu->cpu_index, mmu_idx, va, npages, writable);
    if (whole) {
        qatomic_inc(&hspt_stats.large_fills);
    } else {
        qatomic_add(&hspt_stats.fills, npages);
        if (npages > 1) {
            qatomic_inc(&hspt_stats.run_fills);
        }
    }
    ret = HSPT_MAP_DONE;
out:
    qemu_mutex_unlock(&hspt_lock);
    return ret;
}

/*
 * Entry R of the batch is a page of a large guest page whose fresh lookup
 * (of another page of it) mapped it to RAM from page RP0 on, with
 * GUEST_WRITABLE and GLOBAL rights throughout: keep R's shadow page
 * without a lookup of its own if it maps the RAM page that translation
 * gives it, and is writable only if the guest may write. False if R needs
 * its own lookup.
 */
bool hspt_revalidated_by_block(CPUState *cpu, const HsptRevalidate *r,
                               uint32_t first, uint32_t rp0,
                               bool guest_writable, bool global)
{
    HsptCPU *hc = hspt_cpu(cpu);
    HsptSlot *slot = &hc->cur->slot[hspt_slot_of_idx[r->mmu_idx]];
    uint32_t va_pfn = r->page >> qemu_target_page_bits();
    bool keep;

    qemu_mutex_lock(&hspt_lock);
    keep = hspt_slot_maps_ram(slot, va_pfn, rp0 + (va_pfn - first), 1) &&
           (guest_writable || !test_bit(va_pfn, slot->writable)) &&
           !hspt_slot_page_hot(slot, va_pfn);
    if (keep) {
        hspt_slot_set_global(slot, va_pfn, 1, global);
    }
    qemu_mutex_unlock(&hspt_lock);
    if (keep) {
        qatomic_inc(&hspt_stats.revalidated_by_block);
    }
    return keep;
}

bool hspt_context_flush_begin(CPUState *cpu)
{
    if (!hspt_enabled) {
        return false;
    }
    hspt_cpu(cpu)->in_context_switch = true;
    return true;
}

void hspt_context_flush_end(CPUState *cpu)
{
    hspt_cpu(cpu)->in_context_switch = false;
}

static bool hspt_key_equal(const HsptContextKey *a, const HsptContextKey *b)
{
    return !memcmp(a, b, sizeof(*a));
}

/*
 * The nursery only takes the fills of direct accesses: a block translated
 * before the context became young, reached through a chain. Everything
 * else there runs softmmu-only code and needs no shadow pages.
 */
bool hspt_fill_allowed(CPUState *cpu, bool redirected)
{
    HsptCPU *hc = hspt_cpu(cpu);

    return !qatomic_read(&hc->given_up) &&
           (redirected || hc->cur != hc->nursery);
}

/*
 * SP now holds context KEY. True if it held another context's pages: they
 * are revalidated under KEY when SP becomes current (global kernel pages
 * stay).
 */
static bool hspt_space_rekey(HsptSpace *sp, const HsptContextKey *key)
{
    bool had_pages = sp->n_mapped != 0;

    /* A page hot for the old context is not for the new one. */
    hspt_space_forget_hot_pages(sp);
    if (had_pages) {
        sp->stale = true;
    }
    sp->key = *key;
    sp->keyed = true;
    sp->jc_valid = false;       /* the old context's code */
    return had_pages;
}

/*
 * Jump caches of spaces that are not current stay valid across context
 * switches; a full flush (or one of a large range) makes them all stale,
 * a page flush only the page's entries (hspt_flush_jmp_cache_pages()).
 */
void hspt_jmp_caches_stale(CPUState *cpu)
{
    if (hspt_enabled) {
        hspt_cpu(cpu)->flush_gen++;
    }
}

/* Whether SP's cache is still right for SP's context (see below). */
static bool hspt_jmp_cache_valid(HsptCPU *hc, const HsptSpace *sp)
{
    return sp->jc_valid && sp->jc_flush_gen == hc->flush_gen &&
           sp->jc_tb_flushes == qatomic_read(&tb_ctx.tb_flush_count);
}

bool hspt_flush_keeps_jmp_cache(CPUState *cpu)
{
    if (!hspt_enabled) {
        return false;
    }
    if (hspt_cpu(cpu)->in_context_switch) {
        return true;
    }
    hspt_jmp_caches_stale(cpu);
    return false;
}

/* The next valid jump cache of a space that is not current, from *I. */
struct CPUJumpCache *hspt_kept_jmp_cache(CPUState *cpu, unsigned *i)
{
    HsptCPU *hc = hspt_cpu(cpu);

    while (*i < hspt_nspaces_all) {
        HsptSpace *sp = &hc->spaces[(*i)++];

        if (hspt_jmp_cache_valid(hc, sp) && sp->jc != cpu->tb_jmp_cache) {
            return sp->jc;
        }
    }
    return NULL;
}

/*
 * QEMU clears the vCPU's TB jump cache at every TLB flush, as it finds
 * TBs by virtual PC alone; at a context switch, HSPT instead installs the
 * jump cache of the incoming space (its cache of the incoming context).
 * That cache is still right if no full flush other than a context switch
 * reached the vCPU since it was left (page flushes clear their pages in
 * it): a TLB may keep a context's translations across switches until a
 * TLB invalidation, and a guest TLBIALL or TLBIASID, a memory map change
 * or a reset all flush. Entries for TBs invalidated meanwhile never match
 * (CF_INVALID is in their cflags, see tb_lookup()); a tb_flush() makes
 * every kept cache stale.
 *
 * Before the incoming space is chosen (it may be PREV, given to another
 * context): PREV's cache stays right for PREV's context.
 */
static void hspt_leave_jmp_cache(CPUState *cpu, HsptCPU *hc, HsptSpace *prev)
{
    if (prev->jc == cpu->tb_jmp_cache) {
        prev->jc_flush_gen = hc->flush_gen;
        prev->jc_tb_flushes = qatomic_read(&tb_ctx.tb_flush_count);
        prev->jc_valid = true;
    }
}

/*
 * An emptied cache is best the one in use, which the host has cached: a
 * space that saw a full flush while current (a fork, an exit) is unlikely
 * to find its cache still valid when it comes back, so it gives it to
 * NEXT and takes NEXT's, as stale. Clearing another space's cold cache
 * instead made lpae forkstorm some 8 % slower.
 */
static void hspt_install_jmp_cache(CPUState *cpu, HsptCPU *hc,
                                   HsptSpace *prev, HsptSpace *next)
{
    bool kept = hspt_jmp_cache_valid(hc, next);

    if (kept) {
        qatomic_inc(&hspt_stats.jmp_caches_kept);
    } else if (prev != next && prev->jc == cpu->tb_jmp_cache &&
               prev->jc_install_gen != hc->flush_gen) {
        struct CPUJumpCache *jc = prev->jc;

        prev->jc = next->jc;
        prev->jc_valid = false;
        next->jc = jc;
    }
    next->jc_valid = false;     /* until it is left again */
    next->jc_install_gen = hc->flush_gen;
    qatomic_set(&cpu->tb_jmp_cache, next->jc);
    if (!kept) {
        tcg_flush_jmp_cache(cpu);
    }
}

/*
 * Switch to the space of KEY. A context without one runs in the nursery
 * while it is young, unless GROWN_UP.
 */
static void hspt_context_switch_to(CPUState *cpu, const HsptContextKey *key,
                                   bool grown_up)
{
    HsptCPU *hc = hspt_cpu(cpu);
    HsptSpace *next = NULL, *prev;
    bool hit, reassigned = false;

    qemu_mutex_lock(&hspt_lock);
    hspt_leave_jmp_cache(cpu, hc, hc->cur);
    hc->clock++;
    qatomic_inc(&hspt_stats.switches);
    for (unsigned i = 0; i < hspt_nspaces; i++) {
        HsptSpace *sp = &hc->spaces[i];

        if (sp->keyed && hspt_key_equal(&sp->key, key)) {
            next = sp;
            qatomic_inc(&hspt_stats.switch_hits);
            break;
        }
    }
    hit = next != NULL;
    if (!next && hc->nursery && !grown_up &&
        hspt_young_seen(hc->young, key->v, get_clock(), hspt_nursery_ns)) {
        next = hc->nursery;
        if (!next->keyed || !hspt_key_equal(&next->key, key)) {
            /* the previous tenant's pages are looked up (and dropped) */
            hspt_space_rekey(next, key);
        }
        qatomic_inc(&hspt_stats.nursery_switches);
    }
    if (!next) {
        /* Reuse the least recently used space (with one space: this one). */
        next = hspt_lru_space(hc, false);
        if (!hspt_space_alloc(next)) {
            warn_report_once("hspt: out of memory for shadow bookkeeping; "
                             "contexts share the spaces set up so far");
            qatomic_inc(&hspt_stats.space_alloc_failures);
            next = hspt_lru_space(hc, true);
        }
        /*
         * Dropping the old ASID's pages here instead, unlooked, made
         * forkstorm 12 % slower: the scan of the kernel's large pages
         * costs more than the failed lookups it saves.
         */
        if (hspt_space_rekey(next, key)) {
            qatomic_inc(&hspt_stats.reassigns);
            reassigned = true;
        }
    }
    prev = hc->cur;
    next->last_used = hc->clock;
    if (next != prev) {
        hspt_space_next_flush_epoch(next);
    }
    hc->cur = next;
    hspt_install_jmp_cache(cpu, hc, prev, next);
    if (hc->given_up) {
        /* Nothing to look up in a shadow that is never read again. */
    } else if (next->stale) {
        /*
         * Also half-way through a short-descriptor switch (TTBR0 still at
         * the global-only tables): the kernel's pages stay, the user pages
         * fail and refill later. Dropping the space then cost a signal per
         * kernel page after every fork.
         */
        for (unsigned s = 0; s < hspt_nslots; s++) {
            hspt_slot_flush_or_queue(hc, s);
        }
        next->stale = false;
        next->n_deferred = 0;
    } else {
        hspt_queue_deferred(hc, next);
    }
    if (next != prev && next != hc->nursery) {
        /* The nursery has no kernel pages to give. */
        hspt_queue_prefill(hc, prev == hc->nursery ? hc->last_grown : prev,
                           next);
    }
    if (next != hc->nursery) {
        hc->last_grown = next;
    }
    trace_hspt_context_switch(cpu->cpu_index, next - hc->spaces, hit,
                              reassigned);
    qemu_mutex_unlock(&hspt_lock);
    hspt_cpu_load_code_base(cpu, hc);
    hspt_revalidate_queued(cpu);
}

/*
 * A young context that has run long enough leaves the nursery at its next
 * exception return (a timer tick at the latest), also if it never
 * switches away.
 */
void hspt_nursery_check(CPUState *cpu)
{
    HsptCPU *hc = hspt_cpu(cpu);
    HsptContextKey key;

    if (likely(hc->cur != hc->nursery)) {
        return;
    }
    key = hc->cur->key;
    if (hspt_young_seen(hc->young, key.v, get_clock(), hspt_nursery_ns)) {
        return;
    }
    qatomic_inc(&hspt_stats.nursery_promotions);
    hspt_context_switch_to(cpu, &key, true);
}

/*
 * Called on the vCPU's own thread, after the register write that changed
 * the context (the TB ends right after it).
 */
void hspt_context_switch(CPUState *cpu, const HsptContextKey *key)
{
    hspt_context_switch_to(cpu, key, false);
}

static bool hspt_addr_in_cpu(CPUState *cpu, const void *addr)
{
    return cpu && cpu->cpu_index >= 0 && cpu->cpu_index < hspt_max_cpus &&
           hspt_cpu_holds(&hspt_cpus[cpu->cpu_index], addr);
}

/* x86 page-fault error code: the access was a write. */
#define HSPT_PF_WRITE 2

/* Remember the guest access of TB behind a shadow miss at host ADDR. */
static void hspt_note_fault(CPUState *cpu, const void *addr, bool store,
                            const TranslationBlock *tb)
{
    HsptCPU *hc = hspt_cpu(cpu);
    uint8_t *base = hspt_code_base(hc);
    uint64_t offset = (const uint8_t *)addr - base;
    unsigned slot = offset >> HSPT_SLOT_SHIFT;

    if ((const uint8_t *)addr >= base && slot < hspt_nslots) {
        /* an access that wrapped past 4 GiB faults in the guard half */
        hc->pending[slot] = (HsptPendingAccess) {
            .valid = true, .va = (uint32_t)offset, .store = store, .tb = tb,
            .tb_flushes = qatomic_read(&tb_ctx.tb_flush_count) };
        /* Only generated code faults here: no trace lock can be held. */
        trace_hspt_signal(cpu->cpu_index, hspt_idx_of_slot[slot],
                          (uint32_t)offset, store);
    }
}

/* The pending slow-path access record of MMU_IDX's view. */
static HsptPendingAccess *hspt_pending_access(CPUState *cpu, int mmu_idx)
{
    return &hspt_cpu(cpu)->pending[hspt_slot_of_idx[mmu_idx]];
}

static bool hspt_same_page(uint32_t a, uint32_t b)
{
    return !((a ^ b) & TARGET_PAGE_MASK);
}

void hspt_note_slow_access(CPUState *cpu, int mmu_idx, uint64_t addr,
                           bool store)
{
    HsptPendingAccess *p = hspt_pending_access(cpu, mmu_idx);

    /* A shadow miss of this access already recorded it, with its TB. */
    if (p->valid && hspt_same_page(p->va, addr)) {
        return;
    }
    *p = (HsptPendingAccess) { .valid = true, .va = addr, .store = store };
}

const TranslationBlock *hspt_take_redirect(CPUState *cpu, int mmu_idx,
                                           uint64_t addr, uint64_t last)
{
    HsptPendingAccess *p = hspt_pending_access(cpu, mmu_idx);

    if (!p->valid ||
        (!hspt_same_page(p->va, addr) && !hspt_same_page(p->va, last))) {
        return NULL;
    }
    p->valid = false;
    return p->tb;
}

void hspt_note_fault_ahead(CPUState *cpu, int mmu_idx, uint64_t va,
                           bool direct)
{
    trace_hspt_fault_ahead(cpu->cpu_index, mmu_idx, va, direct);
    qatomic_inc(&hspt_stats.faults_ahead);
}

bool hspt_take_fault(CPUState *cpu, int mmu_idx, uint64_t *va, bool *store,
                     const TranslationBlock **tb)
{
    HsptPendingAccess *p = hspt_pending_access(cpu, mmu_idx);

    if (!p->valid) {
        return false;
    }
    p->valid = false;
    *va = p->va;
    *store = p->store;
    /* The guest ran meanwhile: its TBs may have been flushed. */
    *tb = p->tb_flushes == qatomic_read(&tb_ctx.tb_flush_count) ? p->tb : NULL;
    return true;
}

/*
 * A shadow miss: resume at the access's out-of-line softmmu path, which
 * does the access (or raises the guest fault, or the MMIO) and refills
 * the shadow page. Anything else goes to the previous disposition, so a
 * real crash still crashes.
 */
static void hspt_sigsegv(int sig, siginfo_t *info, void *puc)
{
    ucontext_t *uc = puc;
    uintptr_t pc = uc->uc_mcontext.gregs[REG_RIP];

    if (info->si_code > 0 && hspt_addr_in_cpu(current_cpu, info->si_addr)) {
        const TranslationBlock *tb;
        uintptr_t stub = hspt_tcg_find_stub(pc, &tb);

        if (stub) {
            hspt_note_fault(current_cpu, info->si_addr,
                            uc->uc_mcontext.gregs[REG_ERR] & HSPT_PF_WRITE,
                            tb);
            uc->uc_mcontext.gregs[REG_RIP] = stub;
            qatomic_inc(&hspt_stats.signals);
            return;
        }
    }

    if ((hspt_prev_segv.sa_flags & SA_SIGINFO) &&
        hspt_prev_segv.sa_sigaction) {
        hspt_prev_segv.sa_sigaction(sig, info, puc);
    } else if (hspt_prev_segv.sa_handler != SIG_DFL &&
               hspt_prev_segv.sa_handler != SIG_IGN) {
        hspt_prev_segv.sa_handler(sig);
    } else {
        /*
         * Take the default action: a real fault re-executes on return and
         * now dies where it happened; a sent signal is raised again.
         */
        signal(SIGSEGV, SIG_DFL);
        if (info->si_code <= 0) {
            raise(SIGSEGV);
        }
    }
}

/* Counters are read without stopping the vCPUs: a snapshot, not a sum. */
void hspt_format_info(GString *buf)
{
#define STAT(name) qatomic_read(&hspt_stats.name)
    g_string_append_printf(buf,
        "HSPT on: organisation %s, %u space(s) per vCPU, %u shadowed "
        "view(s) per space, prefill window %u, nursery %u us, %s\n",
        hspt_organisation_name(), hspt_nspaces, hspt_nslots,
        hspt_config.window, hspt_config.nursery_us,
        hspt_base_in_gs ? "space base in %gs"
                        : "slot bases in thread-local storage (no wrgsbase)");
    g_string_append_printf(buf,
        "fills: %" PRIu64 " pages, %" PRIu64 " large pages or sections, %"
        PRIu64 " runs of pages next to clean ones\n",
        STAT(fills), STAT(large_fills), STAT(run_fills));
    g_string_append_printf(buf,
        "signals: %" PRIu64 " shadow misses redirected to the softmmu "
        "slow path\n", STAT(signals));
    g_string_append_printf(buf,
        "left on softmmu: %" PRIu64 " redirected accesses not mappable "
        "(MMIO, watchpoints, code or dirty-tracked pages), %" PRIu64
        " translation blocks retranslated without the direct path, %"
        PRIu64 " back on it\n",
        STAT(unmappable), STAT(softmmu_tbs), STAT(direct_tbs));
    g_string_append_printf(buf,
        "flushes: %" PRIu64 " pages, %" PRIu64 " regions, %" PRIu64
        " large guest pages, %" PRIu64 " by ASID (%" PRIu64
        " global pages kept), %" PRIu64 " pages kept at a TLBIMVA of "
        "another ASID, %" PRIu64 " evictions for the VMA budget\n",
        STAT(page_flushes), STAT(region_flushes), STAT(large_page_flushes),
        STAT(asid_flushes), STAT(asid_kept_global), STAT(asid_page_kept),
        STAT(evictions));
    g_string_append_printf(buf,
        "revalidated: %" PRIu64 " pages or large pages looked up again "
        "instead of dropped (%" PRIu64 " by their large guest page's "
        "lookup), %" PRIu64 " of them unmapped, %" PRIu64 " rights "
        "changes made in one call with a neighbour's, %" PRIu64 " pages "
        "unmapped ahead of their page flush\n",
        STAT(revalidated), STAT(revalidated_by_block),
        STAT(revalidate_unmaps), STAT(rights_merged), STAT(unmapped_ahead));
    g_string_append_printf(buf,
        "deferred: %" PRIu64 " page flushes of a space that was not current, "
        "looked up again when it next became current\n",
        STAT(deferred_flushes));
    g_string_append_printf(buf,
        "slow-path lookups that found their page mapped: %" PRIu64 "\n",
        STAT(refills_skipped));
    g_string_append_printf(buf,
        "prefilled: %" PRIu64 " pages mapped in a fresh space from the "
        "previous space's kernel views\n", STAT(prefilled));
    g_string_append_printf(buf,
        "fault-ahead: %" PRIu64 " pages mapped at the guest's exception "
        "return after their access faulted into the guest\n",
        STAT(faults_ahead));
    g_string_append_printf(buf,
        "hot pages: %" PRIu64 " guest pages left on softmmu after %d page "
        "flushes, %" PRIu64 " fills refused for them\n",
        STAT(hot_pages), HSPT_HOT_PAGE_FLUSHES, STAT(hot_refusals));
    g_string_append_printf(buf,
        "write-protects: %" PRIu64 " shadow pages (code protection, "
        "dirty logging)\n", STAT(write_protects));
    g_string_append_printf(buf,
        "context switches: %" PRIu64 ", %" PRIu64 " to a space holding the "
        "context, %" PRIu64 " spaces reassigned, %" PRIu64 " kept the "
        "space's TB jump cache\n",
        STAT(switches), STAT(switch_hits), STAT(reassigns),
        STAT(jmp_caches_kept));
    g_string_append_printf(buf,
        "nursery: %" PRIu64 " switches of young contexts onto softmmu-only "
        "code, %" PRIu64 " promoted at an exception return\n",
        STAT(nursery_switches), STAT(nursery_promotions));
    g_string_append_printf(buf,
        "parked: %" PRIu64 " page flushes that made the page inaccessible "
        "instead of unmapping its RAM page, %" PRIu64 " refills of a parked "
        "page with the same RAM page\n", STAT(parks), STAT(unparks));
    g_string_append_printf(buf,
        "live: %" PRIu64 " pages mapped, %" PRIu64 " parked, at most %"
        PRIu64 " VMAs (budget %" PRIu64 ")\n",
        STAT(mapped_pages), STAT(parked_pages), STAT(vmas), hspt_vma_budget);
    g_string_append_printf(buf,
        "mmap errors: %" PRIu64 ", %" PRIu64 " spaces left unused for lack "
        "of memory for their bookkeeping, %" PRIu64 " vCPUs moved to "
        "softmmu after a failed unmap\n",
        STAT(mmap_errors), STAT(space_alloc_failures), STAT(cpus_given_up));
    g_string_append_printf(buf,
        "migration: %" PRIu64 " times a vCPU kept off its shadow while "
        "postcopy brought guest RAM in or a background snapshot saved it, %"
        PRIu64 " fills refused meanwhile\n",
        STAT(migration_holds), STAT(migration_refusals));
#undef STAT

    qemu_mutex_lock(&hspt_lock);
    for (unsigned c = 0; c < hspt_max_cpus; c++) {
        HsptCPU *hc = &hspt_cpus[c];
        unsigned in_use = 0;

        if (!hc->base) {
            continue;
        }
        for (unsigned i = 0; i < hspt_nspaces_all; i++) {
            in_use += hc->spaces[i].keyed || hc->spaces[i].n_mapped;
        }
        g_string_append_printf(buf,
            "vCPU %u: space %td current, %u in use, %u pages mapped, "
            "host range 0x%" PRIxPTR "-0x%" PRIxPTR "%s\n",
            c, hc->cur - hc->spaces, in_use, hc->cur->n_mapped,
            (uintptr_t)hc->base, (uintptr_t)hc->base + hc->size,
            hc->given_up ? ", on softmmu" : "");
    }
    qemu_mutex_unlock(&hspt_lock);
}

static void hspt_dump_stats(void)
{
    g_autoptr(GString) buf = g_string_new("");

    hspt_format_info(buf);
    fprintf(stderr, "%s", buf->str);
}

bool hspt_region_init(unsigned max_cpus, uint16_t idx_mask, unsigned nspaces,
                      Error **errp)
{
    struct sigaction sa = {
        .sa_sigaction = hspt_sigsegv,
        .sa_flags = SA_SIGINFO | SA_NODEFER,
    };
    unsigned long max_map_count = 65530;
    g_autofree char *text = NULL;

    if (getenv("QEMU_HSPT_STATS")) {
        atexit(hspt_dump_stats);
    }

    qemu_mutex_init(&hspt_lock);
    hspt_sites_init();
    hspt_base_in_gs = getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE;
    if (!hspt_base_in_gs && getenv("QEMU_HSPT_GS_BY_SYSCALL")) {
        /* This thread's %gs is unused (0): setting it again must work. */
        if (syscall(SYS_arch_prctl, ARCH_SET_GS, 0UL)) {
            error_setg_errno(errp, errno, "hspt=on: QEMU_HSPT_GS_BY_SYSCALL "
                             "set, but arch_prctl(ARCH_SET_GS) fails");
            return false;
        }
        hspt_base_in_gs = hspt_gs_by_syscall = true;
    }
    hspt_tls_slot_base_ofs = (uintptr_t)hspt_tls_slot_base - hspt_fs_base();
    if (!hspt_base_in_gs &&
        hspt_tls_slot_base_ofs != (int32_t)hspt_tls_slot_base_ofs) {
        error_setg(errp, "hspt=on: thread-local storage out of reach of "
                   "generated code on a host without wrgsbase");
        return false;
    }
    hspt_max_cpus = max_cpus;
    hspt_cpus = g_new0(HsptCPU, max_cpus);
    hspt_nspaces = nspaces;
    hspt_nursery_ns = (int64_t)hspt_config.nursery_us * SCALE_US;
    hspt_nspaces_all = nspaces + (hspt_nursery_ns > 0);
    hspt_nslots = 0;
    for (int idx = 0; idx < 16; idx++) {
        if (idx_mask & (1 << idx)) {
            assert(hspt_nslots < HSPT_MAX_SLOTS);
            hspt_idx_of_slot[hspt_nslots] = idx;
            hspt_slot_of_idx[idx] = hspt_nslots++;
        }
    }

    if (g_file_get_contents("/proc/sys/vm/max_map_count", &text, NULL, NULL) &&
        qemu_strtoul(g_strstrip(text), NULL, 10, &max_map_count) < 0) {
        max_map_count = 65530;      /* unreadable: the kernel's default */
    }
    /* Leave QEMU plenty of VMAs of its own. */
    if (max_map_count < 8192) {
        error_setg(errp, "hspt=on needs vm.max_map_count >= 8192 (it is %lu)",
                   max_map_count);
        return false;
    }
    hspt_vma_budget = max_map_count - 4096;

    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &hspt_prev_segv) != 0) {
        error_setg_errno(errp, errno,
                         "hspt: cannot install the SIGSEGV handler");
        return false;
    }
    hspt_enabled = true;
    return true;
}
