/*
 * qemu-hspt: host shadow page tables for TCG guest memory accesses
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_TCG_HSPT_H
#define ACCEL_TCG_HSPT_H

#include "qom/object.h"

/*
 * Core mmu indexes of the only target, 32-bit A-profile Arm (checked at
 * build time in target/arm/hspt-arm.c.inc): the data-access views that
 * get a shadow region (E10_0, E10_1, E10_1_PAN; all others, EL2/EL3,
 * stage 2 and physical, stay on softmmu), and the privileged ones that a
 * fresh space is prefilled with from the previous one.
 */
#define HSPT_SHADOW_IDX_MASK  ((1 << 0) | (1 << 2) | (1 << 4))
#define HSPT_PREFILL_IDX_MASK ((1 << 2) | (1 << 4))

/*
 * What HSPT needs from the host and the machine; filled in at accelerator
 * init and checked by hspt_check_environment(), which is kept free of
 * global state so that unit tests can drive it.
 */
typedef struct HsptEnvironment {
    const char *machine;        /* machine type name, for messages */
    bool host_x86_64;           /* the TCG backend emits the direct access */
    unsigned target_page_bits;
    unsigned host_page_bits;
    bool icount;
    unsigned max_cpus;
} HsptEnvironment;

/* SPT organisations (-accel tcg,hspt-spt=...). */
typedef enum HsptOrganisation {
    HSPT_SPT_SHARED,    /* one space per vCPU, flushed on a context switch */
    HSPT_SPT_GROUP,     /* hspt-groups spaces per vCPU, assigned LRU */
    HSPT_SPT_PRIVATE,   /* a space per context (up to HSPT_PRIVATE_SPACES) */
} HsptOrganisation;

#define HSPT_PRIVATE_SPACES 256
#define HSPT_DEFAULT_GROUPS 8
/* Prefill window: privileged-view pages looked up for a fresh space. */
#define HSPT_DEFAULT_WINDOW 256
#define HSPT_MAX_WINDOW     1024
/*
 * hspt-nursery: a context without a space runs softmmu-only code in the
 * nursery for this long (host time) before it gets one, so that most
 * short-lived processes never need shadow pages. Off by default: it wins
 * on LPAE guests that fork a lot and loses on short-descriptor ones (see
 * docs/hspt.rst).
 */
#define HSPT_DEFAULT_NURSERY_US 0
#define HSPT_MAX_NURSERY_US     1000000

/* User-visible configuration (-accel tcg,hspt=...). */
typedef struct HsptConfig {
    bool enabled;       /* hspt=on */
    HsptOrganisation organisation;
    unsigned groups;
    unsigned window;    /* hspt-window: prefill at most this many pages */
    unsigned nursery_us; /* hspt-nursery: 0 for none */
} HsptConfig;

extern HsptConfig hspt_config;

const char *hspt_organisation_name(void);
/* The text of "info hspt" and x-query-hspt (hspt-region.c). */
void hspt_format_info(GString *buf);

bool hspt_check_environment(const HsptEnvironment *env, Error **errp);

/* Hooks called from accel/tcg/tcg-all.c. */
void hspt_accel_class_init(ObjectClass *oc);
int hspt_init_machine(MachineState *ms, Error **errp);

/*
 * Shadow regions. Each vCPU owns one reservation; the region ("slot") of
 * mmu_idx k starts HSPT_SLOT_SIZE * slot(k) bytes into it, and host
 * address = slot base + zero-extended 32-bit guest VA. The 4 GiB after
 * each region's 4 GiB stay PROT_NONE and catch accesses that wrap past
 * 0xffffffff. Generated code reaches the current space through %gs,
 * whose base the vCPU thread sets with wrgsbase; on hosts without it (no
 * FSGSBASE, or Linux before 5.9) an arch_prctl() per switch of space
 * would cost a system call, so each access loads its slot's base from
 * hspt_tls_slot_base, a thread-local array at hspt_tls_slot_base_ofs
 * from the %fs base, instead.
 */
#define HSPT_SLOT_SHIFT 33
#define HSPT_SLOT_SIZE  (1ull << HSPT_SLOT_SHIFT)
#define HSPT_MAX_SLOTS  4

/* How generated code finds the current space; constant for the process. */
extern bool hspt_base_in_gs;
extern intptr_t hspt_tls_slot_base_ofs;

/* True once hspt=on has been validated; constant for the process. */
extern bool hspt_enabled;
/* Slot of each core mmu_idx, or -1 when that index stays on softmmu. */
extern int8_t hspt_slot_of_idx[16];

static inline bool hspt_idx_active(int mmu_idx)
{
    return hspt_enabled && hspt_slot_of_idx[mmu_idx] >= 0;
}

typedef struct CPUState CPUState;
typedef struct TranslationBlock TranslationBlock;

/*
 * A guest context as the target tags it: translations filled under one
 * key stay valid for that key until a guest TLB invalidation.
 */
typedef struct HsptContextKey {
    uint64_t v[3];
} HsptContextKey;

/* vCPU lifetime (tlb_init/tlb_destroy) and thread entry (cpu_exec). */
void hspt_cpu_init(CPUState *cpu);
void hspt_cpu_destroy(CPUState *cpu);
void hspt_cpu_exec_enter(CPUState *cpu);

/*
 * Context switches (target hooks). A register write that changes the
 * context still flushes the softmmu TLB, which is untagged, but inside
 * hspt_context_flush_begin/end the shadow keeps its spaces; then
 * hspt_context_switch() makes the space of KEY current.
 */
bool hspt_context_flush_begin(CPUState *cpu);
void hspt_context_flush_end(CPUState *cpu);

/*
 * Whether the full flush running on CPU may leave its TB jump cache
 * alone: a context switch, which installs the new context's cache. Any
 * other full flush makes the caches kept for other contexts stale.
 */
bool hspt_flush_keeps_jmp_cache(CPUState *cpu);
/* A flush of CPU that clears its whole jump cache, other than the above. */
void hspt_jmp_caches_stale(CPUState *cpu);
/* Iterate over the valid jump caches of CPU's spaces that are not current. */
struct CPUJumpCache *hspt_kept_jmp_cache(CPUState *cpu, unsigned *i);
/*
 * The new space's pages are looked up (prefill, revalidation) with the
 * registers as they are at the switch, as a TLB may walk at any time: a
 * guest still switching page tables (short-descriptor Linux writes the
 * ASID while TTBR0 points at its global-only tables) keeps the global
 * kernel pages and loses the rest, which later accesses refill.
 */
void hspt_context_switch(CPUState *cpu, const HsptContextKey *key);

/*
 * Young contexts: one without a space of its own runs in the vCPU's
 * nursery on code translated with CF_HSPT_SOFTMMU for hspt-nursery
 * microseconds. hspt_nursery_check() (at each exception return) moves it
 * to a space once that time is up; hspt_fill_allowed() tells the fill
 * paths whether the current space takes shadow pages (REDIRECTED: for a
 * direct access that faulted).
 */
void hspt_nursery_check(CPUState *cpu);
bool hspt_fill_allowed(CPUState *cpu, bool redirected);

/*
 * CPU has stopped using its shadow after a failed unmap, and runs on
 * softmmu (see HsptCPU.dead).
 */
bool hspt_cpu_given_up(CPUState *cpu);

/*
 * Guest TLBIASID(IS) of ASID: QEMU's flush of its untagged TLB that follows
 * drops only the non-global pages of the spaces of that ASID (and all of
 * the spaces of unknown contexts).
 */
void hspt_flush_asid_prepare(CPUState *cpu, uint8_t asid);

/*
 * Shadow maintenance, called with the vCPU's tlb_c.lock held (HSPT's own
 * lock nests inside it). Invalidations act on every space of the vCPU.
 */
typedef enum HsptMapResult {
    HSPT_MAP_REFUSED,       /* left on softmmu */
    HSPT_MAP_DONE,          /* mapped now */
    HSPT_MAP_ALREADY,       /* found mapped that way already */
} HsptMapResult;

HsptMapResult hspt_map_locked(CPUState *cpu, int mmu_idx, uint64_t va,
                              void *host, size_t npages, bool writable,
                              bool global, int lg_page_size, bool populate);
/* What the block caches know of a large guest page (hspt-region.c). */
typedef enum HsptBlockKnown {
    HSPT_BLOCK_UNKNOWN,
    HSPT_BLOCK_MAPPED,          /* mapped whole with the rights asked for */
    HSPT_BLOCK_PARTLY_CLEAN,    /* holds clean pages: map a page alone */
} HsptBlockKnown;
HsptBlockKnown hspt_block_known_locked(CPUState *cpu, int mmu_idx,
                                       uint64_t page, void *host,
                                       bool writable, int lg_page_size);
void hspt_note_partly_clean_locked(CPUState *cpu, int mmu_idx, uint64_t page,
                                   void *host, int lg_page_size);
void hspt_unmap_page_locked(CPUState *cpu, int mmu_idx, uint64_t page);

/*
 * Page flushes of the current space, and the guest's own TLBIALL of its
 * smaller slots, do not unmap at once: the pages are queued, and once the
 * flush has dropped tlb_c.lock (before any guest code runs again) each is
 * looked up afresh and kept, remapped or unmapped. Keeping a page that
 * the page tables still map the same way is what a TLB refilling it
 * speculatively right after the flush would do; it saves an unmap, a
 * signal and a mmap per page (the kernel half after every TLBIALL).
 * Room for a process's 16 MiB working set with the kernel's pages: up to
 * 0.5.2 a limit of 1024 made every TLBIALL of such a process (two per
 * fork) drop its pages wholesale, and each came back with a signal.
 */
#define HSPT_REVALIDATE_MAX 8192
typedef struct HsptRevalidate {
    uint64_t page;
    uint32_t npages;            /* > 1: a large page mapped whole */
    int mmu_idx;
    bool page_flush;            /* from a page flush, not a TLBIALL */
    bool prefill;               /* not mapped yet: map it if it is valid */
} HsptRevalidate;

/*
 * Whether VA is mapped on its own (not within a large page mapped whole)
 * in MMU_IDX's view of CPU's current space.
 */
bool hspt_page_mapped_alone(CPUState *cpu, int mmu_idx, uint64_t va);
/*
 * Unmap VA there, which has no guest translation, when the revalidation
 * batch is done; false if it is not mapped or the batch is full.
 */
bool hspt_unmap_ahead(CPUState *cpu, int mmu_idx, uint64_t va);

/* Process the queue (hspt-cputlb.c.inc), without tlb_c.lock held. */
void hspt_revalidate_queued(CPUState *cpu);

/*
 * The guest's TLBIALL(IS) on CPU: the next full flush of CPU comes with
 * the registers as they are now, so the current space may revalidate
 * (other full flushes, such as reset, may precede register changes).
 */
void hspt_flush_all_prepare(CPUState *cpu);

/*
 * The guest's TLBIALLIS (ASID < 0) or TLBIASIDIS of ASID on SRC: QEMU's
 * flush of every vCPU's TLB, as tlb_flush_all_cpus_synced() makes it, but
 * each vCPU is told on its own thread, right before its flush, what the
 * flush is for (hspt_flush_all_prepare(), hspt_flush_asid_prepare()).
 */
void hspt_tlb_flush_guest_all_cpus_synced(CPUState *src, int asid);

/*
 * The guest's TLBIMVA of ADDR and ASID on CPU, in place of tlb_flush_page():
 * spaces of other ASIDs keep their non-global copy of the page.
 */
void hspt_tlb_flush_page_asid(CPUState *cpu, uint64_t addr, uint8_t asid);

/* Its TLBIMVAIS, in place of tlb_flush_page_all_cpus_synced(). */
void hspt_tlb_flush_page_asid_all_cpus_synced(CPUState *src, uint64_t addr,
                                              uint8_t asid);

/* The ASID of the page flushes that follow; all ASIDs if !BY_ASID. */
void hspt_set_page_flush_asid(CPUState *cpu, bool by_asid, uint8_t asid);

/*
 * Move the queue to CPU's work buffer (valid until the next call) and
 * return it: N entries, or NULL while an earlier batch is still being
 * processed further up the stack.
 */
const HsptRevalidate *hspt_take_revalidations(CPUState *cpu, unsigned *n);
/*
 * Entry R of the batch was looked up: KEEP if it was refilled or found
 * unchanged; else it is unmapped when the batch is done.
 */
void hspt_revalidated(CPUState *cpu, const HsptRevalidate *r, bool keep);
/*
 * Entry R lies in a large guest page from guest page FIRST, which another
 * entry's lookup found mapping RAM page RP0 on with GUEST_WRITABLE and
 * GLOBAL: true if that keeps R (then report it to hspt_revalidated()),
 * false if R needs its own lookup.
 */
bool hspt_revalidated_by_block(CPUState *cpu, const HsptRevalidate *r,
                               uint32_t first, uint32_t rp0,
                               bool guest_writable, bool global);
void hspt_revalidations_done(CPUState *cpu);
/* Flush MMU_IDX's region of the current space instead of revalidating. */
void hspt_revalidate_give_up(CPUState *cpu, int mmu_idx);
/* A slow-path access whose page cannot be shadow-mapped (counted). */
void hspt_note_unmappable(CPUState *cpu, int mmu_idx, uint64_t va);
void hspt_flush_idx_locked(CPUState *cpu, uint16_t idxmap, bool full);
void hspt_write_protect_host_locked(CPUState *cpu, uintptr_t host,
                                    size_t length);

/*
 * Fault-ahead. A shadow miss whose slow path raised a guest exception (a
 * page the guest had not populated yet, a copy-on-write page) would miss
 * again when the guest retries the access after its handler returns. The
 * target calls hspt_exception_return() after the guest's exception return
 * with the mmu_idx now in use; if the faulting access used that view, its
 * page is looked up again and mapped if the guest made it valid. The
 * access also counts against its site: one that keeps faulting into the
 * guest (first touches of fresh memory, copy-on-write) pays a signal on
 * top of each guest fault and is better off on softmmu.
 */
void hspt_exception_return(CPUState *cpu, int mmu_idx);
/*
 * The slow path of MMU_IDX resolved ADDR (and LAST, its last byte's
 * address): the TB whose direct access faulted into it, if this is that
 * access; it is then no longer pending.
 */
const TranslationBlock *hspt_take_redirect(CPUState *cpu, int mmu_idx,
                                           uint64_t addr, uint64_t last);
/*
 * The pending faulted access of MMU_IDX, if any, and its TB (NULL if TBs
 * were flushed since); clears it.
 */
bool hspt_take_fault(CPUState *cpu, int mmu_idx, uint64_t *va, bool *store,
                     const TranslationBlock **tb);
/*
 * A slow-path access of MMU_IDX to ADDR is starting (from a softmmu-only
 * translation block, or redirected by a shadow miss). If it raises a guest
 * exception, hspt_exception_return() fetches its page ahead as for a
 * faulted direct access: the retried access may run in a new block that
 * starts at the faulting instruction and uses the direct path.
 */
void hspt_note_slow_access(CPUState *cpu, int mmu_idx, uint64_t addr,
                           bool store);
/*
 * Count (and trace) a page that hspt_exception_return() mapped; DIRECT:
 * the faulted access was a direct one, not a softmmu-only block's.
 */
void hspt_note_fault_ahead(CPUState *cpu, int mmu_idx, uint64_t va,
                           bool direct);

/* Code generation side (tcg/tcg-hspt.c.inc). */
uintptr_t hspt_tcg_find_stub(uintptr_t host_pc, const TranslationBlock **tb);

/* Sites that keep faulting (hspt-sites.c). */
void hspt_sites_init(void);
void hspt_site_miss(const TranslationBlock *tb, bool lasting);
/* TB's direct accesses fault for good on this vCPU: retranslate it. */
void hspt_tb_drop(const TranslationBlock *tb);
/*
 * A slow-path access of CPU found its page shadow-mapped (counted); RA is
 * the return address into the softmmu-path TB it came from, if any (0
 * otherwise).
 */
void hspt_site_found_mapped(CPUState *cpu, uintptr_t ra);
/* MMU_IDX's page at VA is hot in the current space (see hspt-region.c). */
bool hspt_page_is_hot(CPUState *cpu, int mmu_idx, uint64_t va);
/*
 * Where the vCPU's last fill in a large guest page with clean pages ended:
 * its page | mmu_idx, so that the next one can tell a stream from a
 * random access (see hspt_dirty_run()).
 */
uint64_t hspt_run_end(CPUState *cpu);
void hspt_set_run_end(CPUState *cpu, uint64_t page_idx);
/* TB (being translated) must use the softmmu path for every access. */
bool hspt_tb_softmmu_only(const TranslationBlock *tb);

#endif
