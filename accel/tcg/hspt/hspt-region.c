/*
 * qemu-hspt: per-vCPU shadow regions, the SIGSEGV redirect, and shadow
 * page maintenance
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "hw/core/cpu.h"
#include "exec/cpu-common.h"
#include "exec/ramblock.h"
#include "exec/target_page.h"
#include "hspt.h"
#include "hspt-internal.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <asm/prctl.h>

#define HSPT_GUEST_VA_SIZE (1ull << 32)
/* A slot flush unmaps page by page up to this many pages, else wholesale. */
#define HSPT_FLUSH_PAGEWISE_MAX 32

bool hspt_enabled;
int8_t hspt_slot_of_idx[16] = { [0 ... 15] = -1 };
HsptStats hspt_stats;

static HsptCPU *hspt_cpus;
static unsigned hspt_max_cpus;
static unsigned hspt_nslots;
static uint64_t hspt_page_budget;
static struct sigaction hspt_prev_segv;

/* Guest pages per shadow region (one bit each in the slot bitmaps). */
static size_t hspt_slot_pages(void)
{
    return HSPT_GUEST_VA_SIZE >> qemu_target_page_bits();
}

static HsptCPU *hspt_cpu(CPUState *cpu)
{
    assert(cpu->cpu_index >= 0 && cpu->cpu_index < hspt_max_cpus);
    return &hspt_cpus[cpu->cpu_index];
}

/* Replace [addr, addr + len) with an inaccessible, unbacked reservation. */
static bool hspt_reserve(void *addr, size_t len)
{
    void *p = mmap(addr, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    return p == addr;
}

void hspt_cpu_init(CPUState *cpu)
{
    HsptCPU *hc = hspt_cpu(cpu);
    size_t size = hspt_nslots * HSPT_SLOT_SIZE;
    size_t npages = hspt_slot_pages();
    void *p;

    p = mmap(NULL, size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        error_report("hspt: cannot reserve %zu GiB of address space for "
                     "vCPU %d: %s", size >> 30, cpu->cpu_index,
                     strerror(errno));
        exit(1);
    }
    hc->base = p;
    hc->size = size;
    for (unsigned s = 0; s < hspt_nslots; s++) {
        hc->slot[s].mapped = bitmap_new(npages);
        hc->slot[s].writable = bitmap_new(npages);
        hc->slot[s].n_mapped = 0;
    }
}

void hspt_cpu_destroy(CPUState *cpu)
{
    HsptCPU *hc = hspt_cpu(cpu);

    if (!hc->base) {
        return;
    }
    for (unsigned s = 0; s < hspt_nslots; s++) {
        qatomic_sub(&hspt_stats.mapped_pages, hc->slot[s].n_mapped);
        g_free(hc->slot[s].mapped);
        g_free(hc->slot[s].writable);
    }
    munmap(hc->base, hc->size);
    memset(hc, 0, sizeof(*hc));
}

/*
 * Generated code addresses the current vCPU's reservation through %gs.
 * Only this thread's base changes; it is re-set only when a (round-robin)
 * thread switches to another vCPU.
 */
void hspt_cpu_exec_enter(CPUState *cpu)
{
    static __thread void *gs_base;
    HsptCPU *hc = hspt_cpu(cpu);

    if (gs_base != hc->base) {
        if (syscall(SYS_arch_prctl, ARCH_SET_GS, hc->base) != 0) {
            error_report("hspt: arch_prctl(ARCH_SET_GS) failed: %s",
                         strerror(errno));
            abort();
        }
        gs_base = hc->base;
    }
}

/* The shadow region of CPU's MMU_IDX (and its base), or NULL if none. */
static HsptSlot *hspt_slot(CPUState *cpu, int mmu_idx, uint8_t **base)
{
    int s = hspt_slot_of_idx[mmu_idx];
    HsptCPU *hc;

    if (s < 0) {
        return NULL;
    }
    hc = hspt_cpu(cpu);
    *base = hc->base + (uint64_t)s * HSPT_SLOT_SIZE;
    return &hc->slot[s];
}

void hspt_unmap_page_locked(CPUState *cpu, int mmu_idx, uint64_t page)
{
    unsigned long pfn = page >> qemu_target_page_bits();
    uint8_t *base;
    HsptSlot *slot = hspt_slot(cpu, mmu_idx, &base);

    if (!slot || !test_bit(pfn, slot->mapped)) {
        return;
    }
    if (!hspt_reserve(base + page, qemu_target_page_size())) {
        /* The old mapping may still be there: nothing safe remains. */
        error_report("hspt: cannot unmap a shadow page: %s", strerror(errno));
        abort();
    }
    clear_bit(pfn, slot->mapped);
    clear_bit(pfn, slot->writable);
    slot->n_mapped--;
    qatomic_dec(&hspt_stats.mapped_pages);
    qatomic_inc(&hspt_stats.page_flushes);
}

void hspt_flush_idx_locked(CPUState *cpu, int mmu_idx)
{
    size_t npages = hspt_slot_pages();
    uint8_t *base;
    HsptSlot *slot = hspt_slot(cpu, mmu_idx, &base);

    if (!slot || slot->n_mapped == 0) {
        return;
    }
    if (slot->n_mapped <= HSPT_FLUSH_PAGEWISE_MAX) {
        unsigned long pfn;

        for (pfn = find_first_bit(slot->mapped, npages); pfn < npages;
             pfn = find_next_bit(slot->mapped, npages, pfn + 1)) {
            hspt_unmap_page_locked(cpu, mmu_idx,
                                   (uint64_t)pfn << qemu_target_page_bits());
        }
    } else {
        if (!hspt_reserve(base, HSPT_GUEST_VA_SIZE)) {
            error_report("hspt: cannot flush a shadow region: %s",
                         strerror(errno));
            abort();
        }
        qatomic_sub(&hspt_stats.mapped_pages, slot->n_mapped);
        bitmap_zero(slot->mapped, npages);
        bitmap_zero(slot->writable, npages);
        slot->n_mapped = 0;
    }
    qatomic_inc(&hspt_stats.region_flushes);
}

void hspt_write_protect_locked(CPUState *cpu, int mmu_idx, uint64_t page)
{
    unsigned long pfn = page >> qemu_target_page_bits();
    uint8_t *base;
    HsptSlot *slot = hspt_slot(cpu, mmu_idx, &base);

    if (!slot || !test_bit(pfn, slot->writable)) {
        return;
    }
    if (mprotect(base + page, qemu_target_page_size(), PROT_READ) != 0) {
        hspt_unmap_page_locked(cpu, mmu_idx, page);
        return;
    }
    clear_bit(pfn, slot->writable);
    qatomic_inc(&hspt_stats.write_protects);
}

void hspt_map_page_locked(CPUState *cpu, int mmu_idx, uint64_t page,
                          void *host, bool writable)
{
    size_t psize = qemu_target_page_size();
    unsigned long pfn = page >> qemu_target_page_bits();
    uint8_t *base;
    HsptSlot *slot = hspt_slot(cpu, mmu_idx, &base);
    ram_addr_t offset;
    RAMBlock *rb;
    void *p;

    if (!slot) {
        return;
    }

    rb = qemu_ram_block_from_host(host, false, &offset);
    if (!rb || rb->fd < 0 || !qemu_ram_is_shared(rb) ||
        rb->page_size != qemu_real_host_page_size()) {
        qatomic_inc(&hspt_stats.unmappable);
        return;
    }

    /*
     * Stay well below vm.max_map_count: every isolated shadow page splits
     * a reservation, costing up to two mappings. Evict our own region
     * first; if other vCPUs hold the budget, leave this page on softmmu.
     */
    if (!test_bit(pfn, slot->mapped) &&
        qatomic_read(&hspt_stats.mapped_pages) >= hspt_page_budget) {
        hspt_flush_idx_locked(cpu, mmu_idx);
        qatomic_inc(&hspt_stats.evictions);
        if (qatomic_read(&hspt_stats.mapped_pages) >= hspt_page_budget) {
            return;
        }
    }

    p = mmap(base + page, psize,
             PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED,
             rb->fd, rb->fd_offset + offset);
    if (p == MAP_FAILED) {
        /* A failed MAP_FIXED may have dropped the old mapping: re-reserve. */
        qatomic_inc(&hspt_stats.mmap_errors);
        if (test_bit(pfn, slot->mapped)) {
            hspt_unmap_page_locked(cpu, mmu_idx, page);
        } else if (!hspt_reserve(base + page, psize)) {
            error_report("hspt: cannot restore a shadow reservation: %s",
                         strerror(errno));
            abort();
        }
        return;
    }
    if (!test_and_set_bit(pfn, slot->mapped)) {
        slot->n_mapped++;
        qatomic_inc(&hspt_stats.mapped_pages);
    }
    if (writable) {
        set_bit(pfn, slot->writable);
    } else {
        clear_bit(pfn, slot->writable);
    }
    qatomic_inc(&hspt_stats.fills);
}

static bool hspt_addr_in_cpu(CPUState *cpu, const void *addr)
{
    HsptCPU *hc;

    if (!cpu || cpu->cpu_index < 0 || cpu->cpu_index >= hspt_max_cpus) {
        return false;
    }
    hc = &hspt_cpus[cpu->cpu_index];
    return hc->base && (const uint8_t *)addr >= hc->base &&
           (const uint8_t *)addr < hc->base + hc->size;
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
        uintptr_t stub = hspt_tcg_find_stub(pc);

        if (stub) {
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

static void hspt_dump_stats(void)
{
    fprintf(stderr, "hspt: fills %" PRIu64 " signals %" PRIu64
            " page-flushes %" PRIu64 " region-flushes %" PRIu64
            " write-protects %" PRIu64 " evictions %" PRIu64
            " unmappable %" PRIu64 " mmap-errors %" PRIu64
            " mapped %" PRIu64 "\n",
            hspt_stats.fills, hspt_stats.signals, hspt_stats.page_flushes,
            hspt_stats.region_flushes, hspt_stats.write_protects,
            hspt_stats.evictions, hspt_stats.unmappable,
            hspt_stats.mmap_errors, hspt_stats.mapped_pages);
}

bool hspt_region_init(unsigned max_cpus, uint16_t idx_mask, Error **errp)
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

    hspt_max_cpus = max_cpus;
    hspt_cpus = g_new0(HsptCPU, max_cpus);
    hspt_nslots = 0;
    for (int idx = 0; idx < 16; idx++) {
        if (idx_mask & (1 << idx)) {
            assert(hspt_nslots < HSPT_MAX_SLOTS);
            hspt_slot_of_idx[idx] = hspt_nslots++;
        }
    }

    if (g_file_get_contents("/proc/sys/vm/max_map_count", &text, NULL, NULL)) {
        max_map_count = strtoul(text, NULL, 10);
    }
    /* Two mappings per isolated page, and leave QEMU plenty of its own. */
    if (max_map_count < 8192) {
        error_setg(errp, "hspt=on needs vm.max_map_count >= 8192 (it is %lu)",
                   max_map_count);
        return false;
    }
    hspt_page_budget = (max_map_count - 4096) / 2;

    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &hspt_prev_segv) != 0) {
        error_setg_errno(errp, errno, "hspt: cannot install the SIGSEGV handler");
        return false;
    }
    hspt_enabled = true;
    return true;
}
