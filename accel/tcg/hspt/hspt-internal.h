/*
 * qemu-hspt: state shared by the files of accel/tcg/hspt
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_TCG_HSPT_INTERNAL_H
#define ACCEL_TCG_HSPT_INTERNAL_H

#include "qemu/bitmap.h"
#include "hspt.h"
#include "hspt-bits.h"

#define HSPT_SLOT_BLOCKS 64

/*
 * Page flushes of a space that is not current are looked up again when it
 * becomes current instead of unmapping at once (hspt_defer_page_flush()).
 */
#define HSPT_DEFERRED_MAX 1024

/*
 * A guest page of a space as one word: its page number, and its slot from
 * bit HSPT_PAGE_KEY_SLOT_SHIFT up, so that adjacent pages of a slot have
 * adjacent keys.
 */
#define HSPT_PAGE_KEY_SLOT_SHIFT 28

static inline uint32_t hspt_page_key(unsigned s, uint32_t va_pfn)
{
    return va_pfn | s << HSPT_PAGE_KEY_SLOT_SHIFT;
}

static inline uint32_t hspt_page_key_pfn(uint32_t key)
{
    return key & ((1u << HSPT_PAGE_KEY_SLOT_SHIFT) - 1);
}

static inline unsigned hspt_page_key_slot(uint32_t key)
{
    return key >> HSPT_PAGE_KEY_SLOT_SHIFT;
}

/* One shadow region: the view of one mmu_idx in one space. */
typedef struct HsptSlot {
    unsigned long *mapped;      /* guest page has a file mapping */
    /* word W of mapped may be nonzero (see hspt_find_next_sparse()) */
    unsigned long *mapped_summary;
    unsigned long *writable;    /* ... and it is PROT_WRITE */
    /* ... and its guest translation is global (nG clear; see TLBIASID) */
    unsigned long *global;
    /*
     * guest page not mapped, but its host page still maps RAM page
     * ram_pfn, inaccessible (see hspt_slot_unmap_page())
     */
    unsigned long *parked;
    uint32_t *ram_pfn;          /* RAM page behind each mapped guest page */
    /* page flushes that hit each guest page, see hspt_flush_count() */
    uint8_t *page_flushes;
    bool has_hot_pages;         /* some page_flushes reached the limit */
    uint32_t n_mapped;
    uint32_t n_parked;
    uint32_t n_runs;            /* maximal runs of mapped pages */
    uint32_t vmas;              /* see hspt_account_vmas() */
    HsptLargePages lp;          /* large guest pages since the last flush */
    HsptBlock blocks[HSPT_SLOT_BLOCKS];
    unsigned n_blocks;
    bool blocks_overflow;       /* more blocks than fit: no revalidation */
    HsptWholeCache whole;       /* large pages known to be mapped whole */
    HsptPartialCache partial;   /* ... known to hold clean pages */
} HsptSlot;

/*
 * A space is one set of regions (one per shadowed mmu_idx), tagged with
 * the guest context whose translations it holds.
 */
typedef struct HsptSpace {
    uint8_t *base;              /* code base while this space is current */
    HsptSlot slot[HSPT_MAX_SLOTS];
    HsptContextKey key;
    bool keyed;                 /* false: key unknown, never matched */
    /*
     * A guest TLBIALL happened while another space was current: the pages
     * are looked up again when this space next becomes current, before any
     * guest code uses it.
     */
    bool stale;
    uint32_t deferred[HSPT_DEFERRED_MAX];  /* hspt_page_key() */
    unsigned n_deferred;
    uint64_t last_used;         /* LRU clock */
    /* page flush counts are per epoch (see HSPT_HOT_EPOCH_NS) */
    uint8_t flush_epoch;
    int64_t flush_epoch_start;  /* host ns */
    uint32_t n_mapped;
    uint32_t n_parked;
    /*
     * QEMU's TB jump cache of this space's context: installed while the
     * space is current and kept across switches away and back, so long as
     * no full flush reached the vCPU meanwhile (hspt_install_jmp_cache()).
     */
    struct CPUJumpCache *jc;
    uint64_t jc_flush_gen;      /* HsptCPU.flush_gen when it was left */
    uint64_t jc_install_gen;    /* ... when it was installed */
    uint32_t jc_tb_flushes;     /* tb_flush_count when it was left */
    bool jc_valid;              /* false: cleared when next installed */
} HsptSpace;

typedef struct HsptPendingAccess {
    bool valid;
    uint32_t va;
    bool store;
    const TranslationBlock *tb; /* whose direct access missed, or NULL */
    unsigned tb_flushes;        /* tb_flush_count when tb was valid */
} HsptPendingAccess;

/*
 * Rights-only changes of adjacent pages in one revalidation batch (the
 * write protection of a process's pages at a guest fork), made with one
 * mprotect when the batch is done.
 */
typedef struct HsptRightsRun {
    HsptSpace *space;
    unsigned slot;
    uint32_t first, npages;     /* guest page numbers; npages 0: none */
    int prot;
} HsptRightsRun;

typedef struct HsptCPU {
    uint8_t *base;              /* one reservation holding every space */
    size_t size;
    HsptSpace *spaces;
    HsptSpace *cur;
    /* Where young contexts run, on softmmu-only code; NULL if none. */
    HsptSpace *nursery;
    HsptYoung young[HSPT_YOUNG_MAX];
    HsptSpace *last_grown;      /* the last current space but the nursery */
    /*
     * Never mapped. Set when an unmap failed and left a stale shadow page
     * behind: generated code points here from then on, so that every
     * direct access faults into the softmmu slow path, and nothing is
     * mapped again.
     */
    uint8_t *dead;
    /* on softmmu for good: an unmap failed, or no guest RAM is mappable */
    bool given_up;
    /* on softmmu-only code while a migration holds HSPT back */
    bool held_for_migration;
    uint64_t run_end;           /* see hspt_run_end() */
    uint64_t clock;
    bool in_context_switch;     /* the running tlb_flush is a switch */
    /*
     * Flushes of this vCPU that cleared its whole jump cache, other than
     * context switches (see hspt_jmp_caches_stale())
     */
    uint64_t flush_gen;
    /* the vCPU's own jump cache (its spaces' are installed instead) */
    struct CPUJumpCache *own_jc;
    /* ASIDs whose TLBIASID is waiting for its softmmu full flush */
    DECLARE_BITMAP(pending_asids, 256);
    /* the running page flush is a TLBIMVA of this ASID (see hspt.h) */
    bool page_flush_by_asid;
    uint8_t page_flush_asid;
    /* page flushes of the current space waiting for hspt_flush_done() */
    HsptRevalidate *reval;      /* HSPT_REVALIDATE_MAX entries */
    unsigned n_reval;
    HsptRevalidate *reval_work; /* the batch being looked up */
    /* its pages whose lookup failed (hspt_page_key()) */
    uint32_t *reval_failed;
    unsigned n_reval_failed;
    bool revalidating;
    HsptRightsRun rights;       /* made when the batch is done */
    HsptBlock *units;           /* scratch for hspt_slot_flush_or_queue() */
    bool guest_tlbi_all;        /* see hspt_flush_all_prepare() */
    /*
     * Per view, the last slow-path access until it completes; left set
     * when it raised a guest exception (see hspt_exception_return()), and
     * kept per view so that the guest's handler, which runs in another
     * view, does not overwrite it.
     */
    HsptPendingAccess pending[HSPT_MAX_SLOTS];
} HsptCPU;

/* Process-wide counters (printed at exit with QEMU_HSPT_STATS=1). */
typedef struct HsptStats {
    uint64_t fills;
    uint64_t large_fills;
    uint64_t run_fills;         /* fills of several pages, not whole */
    uint64_t vmas;
    uint64_t signals;
    uint64_t page_flushes;
    uint64_t region_flushes;
    uint64_t large_page_flushes;    /* by a page flush inside them */
    uint64_t write_protects;
    uint64_t evictions;
    uint64_t unmappable;
    uint64_t mmap_errors;
    uint64_t mapped_pages;
    uint64_t parks;
    uint64_t unparks;
    uint64_t parked_pages;
    uint64_t switches;
    uint64_t switch_hits;
    uint64_t jmp_caches_kept;
    uint64_t nursery_switches;
    uint64_t nursery_promotions;
    uint64_t reassigns;
    uint64_t space_alloc_failures;
    uint64_t cpus_given_up;
    uint64_t migration_holds;       /* see hspt_held_for_migration() */
    uint64_t migration_refusals;
    uint64_t asid_flushes;
    uint64_t asid_kept_global;
    uint64_t asid_page_kept;    /* non-global pages a TLBIMVA left alone */
    uint64_t softmmu_tbs;
    uint64_t direct_tbs;
    uint64_t refills_skipped;
    uint64_t revalidated;
    uint64_t revalidated_by_block;
    uint64_t revalidate_unmaps;
    uint64_t rights_merged;
    uint64_t unmapped_ahead;
    uint64_t deferred_flushes;
    uint64_t prefilled;
    uint64_t hot_pages;
    uint64_t hot_refusals;
    uint64_t faults_ahead;
} HsptStats;

extern HsptStats hspt_stats;

bool hspt_region_init(unsigned max_cpus, uint16_t idx_mask, unsigned nspaces,
                      Error **errp);
const char *hspt_ram_block_unmappable(RAMBlock *rb);
bool hspt_guest_ram_unmappable(void);

#endif
