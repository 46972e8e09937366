/*
 * qemu-hspt: small pure pieces of shadow bookkeeping (unit-tested alone)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_TCG_HSPT_BITS_H
#define ACCEL_TCG_HSPT_BITS_H

#include "qemu/bitops.h"

/*
 * The large guest pages filled into a region since its last flush.
 * Invalidating any page of one must drop every page filled from it, since
 * a TLBI of one page of a section invalidates the section's TLB entry.
 * ADDR/MASK bound their union as one aligned range, as the softmmu TLB's
 * large-page region does. ORDER, where given, says which 64 KiB granules
 * of that range belong to one (log2 of the largest large page filled
 * over each, 0: none), so that a page flush between them, such as the
 * kmap slots that a guest with highmem flushes next to its linear map,
 * leaves them alone. Without ORDER the whole range counts.
 */
#define HSPT_LP_GRANULE_BITS 16         /* the smallest large page */
#define HSPT_LP_GRANULES (1u << (32 - HSPT_LP_GRANULE_BITS))

typedef struct HsptLargePages {
    bool any;           /* false: no large page since the last flush */
    uint32_t addr;
    uint32_t mask;      /* may widen to 0: all 4 GiB */
    uint8_t *order;     /* HSPT_LP_GRANULES entries, or NULL */
} HsptLargePages;

/* The address mask of a large page of 2^LG_PAGE_SIZE bytes. */
static inline uint32_t hspt_lp_mask(unsigned lg_page_size)
{
    return lg_page_size >= 32 ? 0 : ~(uint32_t)0 << lg_page_size;
}

/* The granules of [FIRST, FIRST + SIZE) in ORDER, from G for N. */
static inline void hspt_lp_granules(uint32_t first, uint64_t size,
                                    uint32_t *g, uint32_t *n)
{
    *g = first >> HSPT_LP_GRANULE_BITS;
    *n = MAX(size >> HSPT_LP_GRANULE_BITS, 1);
}

/* No large page lies in [FIRST, FIRST + SIZE) any more (ORDER given). */
static inline void hspt_lp_clear(HsptLargePages *lp, uint32_t first,
                                 uint64_t size)
{
    uint32_t g, n;

    hspt_lp_granules(first, size, &g, &n);
    memset(lp->order + g, 0, n);
}

static inline void hspt_lp_reset(HsptLargePages *lp)
{
    if (lp->any && lp->order) {
        hspt_lp_clear(lp, lp->addr, (uint64_t)~lp->mask + 1);
    }
    lp->any = false;
}

static inline void hspt_lp_add(HsptLargePages *lp, uint32_t va,
                               unsigned lg_page_size)
{
    uint32_t mask = hspt_lp_mask(lg_page_size);

    if (lp->order) {
        uint32_t g, n;

        hspt_lp_granules(va & mask, (uint64_t)~mask + 1, &g, &n);
        /* Granules of one large page are all recorded or none. */
        if (lp->order[g] < lg_page_size) {
            for (uint32_t i = 0; i < n; i++) {
                lp->order[g + i] = MAX(lp->order[g + i], lg_page_size);
            }
        }
    }
    if (!lp->any) {
        lp->any = true;
        lp->addr = va & mask;
        lp->mask = mask;
        return;
    }
    /* Widen to the smallest aligned range covering both. */
    mask &= lp->mask;
    while (((lp->addr ^ va) & mask) != 0) {
        mask <<= 1;     /* ends at 0 at the latest: covers everything */
    }
    lp->addr &= mask;
    lp->mask = mask;
}

static inline bool hspt_lp_covers(const HsptLargePages *lp, uint32_t va)
{
    return lp->any && ((va ^ lp->addr) & lp->mask) == 0 &&
           (!lp->order || lp->order[va >> HSPT_LP_GRANULE_BITS]);
}

/*
 * The large page around VA that a page flush of VA must drop, given
 * hspt_lp_covers(LP, VA): [*FIRST, *FIRST + *SIZE). Without ORDER, all of
 * the covered range.
 */
static inline void hspt_lp_extent(const HsptLargePages *lp, uint32_t va,
                                  uint32_t *first, uint64_t *size)
{
    uint32_t mask = lp->order ?
        hspt_lp_mask(lp->order[va >> HSPT_LP_GRANULE_BITS]) : lp->mask;

    *first = va & mask;
    *size = (uint64_t)~mask + 1;
}

/* The large page [FIRST, FIRST + SIZE) was dropped. */
static inline void hspt_lp_forget(HsptLargePages *lp, uint32_t first,
                                  uint64_t size)
{
    if (lp->order) {
        hspt_lp_clear(lp, first, size);
    } else {
        lp->any = false;
    }
}

/*
 * Large guest pages a region maps whole and uniformly: NPAGES pages from
 * VA_PFN map RAM pages RP.. in order, all writable or all read-only. A
 * cache in front of the page-by-page check (512 pages per LPAE block); the
 * owner drops the entries of every page whose mapping changes.
 * Direct-mapped by first page: after a TLBIALL the kernel's linear map
 * comes back as a hundred or more blocks, which the 16-entry list of 0.5.2
 * cycled through without a hit. Blocks are aligned to their power-of-two
 * size, as guest large pages are; others are not cached.
 */
#define HSPT_WHOLE_BITS 8
#define HSPT_WHOLE_BLOCKS (1u << HSPT_WHOLE_BITS)
#define HSPT_WHOLE_MAX_PAGES 4096       /* a 16 MiB supersection */

typedef struct HsptWholeBlock {
    uint32_t va_pfn;
    uint32_t npages;    /* 0: empty */
    uint32_t rp;
    bool writable;
} HsptWholeBlock;

typedef struct HsptWholeCache {
    HsptWholeBlock e[HSPT_WHOLE_BLOCKS];
    unsigned n;         /* entries in use */
} HsptWholeCache;

/* The entry of a BITS-bit direct-mapped block cache for first page VA_PFN. */
static inline unsigned hspt_block_hash(uint32_t va_pfn, unsigned bits)
{
    return (va_pfn * 2654435761u) >> (32 - bits);      /* Fibonacci hash */
}

static inline HsptWholeBlock *hspt_whole_slot(HsptWholeCache *c,
                                              uint32_t va_pfn)
{
    return &c->e[hspt_block_hash(va_pfn, HSPT_WHOLE_BITS)];
}

static inline void hspt_whole_reset(HsptWholeCache *c)
{
    if (c->n) {
        memset(c->e, 0, sizeof(c->e));
        c->n = 0;
    }
}

static inline void hspt_whole_forget(HsptWholeCache *c, HsptWholeBlock *w)
{
    w->npages = 0;
    c->n--;
}

/* Pages [VA_PFN, VA_PFN + NPAGES) change: drop every entry touching them. */
static inline void hspt_whole_drop(HsptWholeCache *c, uint32_t va_pfn,
                                   uint32_t npages)
{
    if (!c->n) {
        return;
    }
    if (npages > 32) {
        for (unsigned i = 0; i < HSPT_WHOLE_BLOCKS; i++) {
            HsptWholeBlock *w = &c->e[i];

            if (w->npages && w->va_pfn < va_pfn + npages &&
                va_pfn < w->va_pfn + w->npages) {
                hspt_whole_forget(c, w);
            }
        }
        return;
    }
    /* A block of 2^k pages touching the range starts at a multiple of it. */
    for (uint32_t size = 2; size <= HSPT_WHOLE_MAX_PAGES; size <<= 1) {
        for (uint32_t first = va_pfn & ~(size - 1); first < va_pfn + npages;
             first += size) {
            HsptWholeBlock *w = hspt_whole_slot(c, first);

            if (w->npages == size && w->va_pfn == first) {
                hspt_whole_forget(c, w);
            }
        }
    }
}

static inline bool hspt_whole_maps(HsptWholeCache *c, uint32_t va_pfn,
                                   uint32_t npages, uint32_t rp,
                                   bool writable)
{
    const HsptWholeBlock *w = hspt_whole_slot(c, va_pfn);

    return w->npages == npages && w->va_pfn == va_pfn && w->rp == rp &&
           w->writable == writable;
}

static inline void hspt_whole_add(HsptWholeCache *c, uint32_t va_pfn,
                                  uint32_t npages, uint32_t rp, bool writable)
{
    HsptWholeBlock *w;

    hspt_whole_drop(c, va_pfn, npages);
    if (npages < 2 || npages > HSPT_WHOLE_MAX_PAGES ||
        (npages & (npages - 1)) || (va_pfn & (npages - 1))) {
        return;
    }
    w = hspt_whole_slot(c, va_pfn);
    c->n += !w->npages;
    *w = (HsptWholeBlock) { va_pfn, npages, rp, writable };
}

/*
 * Large guest pages that hold pages not dirty for every client (code,
 * dirty logging), so that they cannot be mapped whole and writable: a fill
 * of a page inside one maps that page alone without checking the block's
 * 512 pages again (750 000 such failed checks in one forkstorm run, mostly
 * the kernel image's blocks). A stale entry is harmless (a block that has
 * become dirty throughout is still mapped page by page); each entry is
 * trusted HSPT_PARTIAL_CREDIT times and then the block is checked again.
 */
#define HSPT_PARTIAL_BITS 6
#define HSPT_PARTIAL_BLOCKS (1u << HSPT_PARTIAL_BITS)
#define HSPT_PARTIAL_CREDIT 64

typedef struct HsptPartialBlock {
    uint32_t va_pfn;
    uint32_t npages;
    uint32_t rp;
    uint32_t credit;    /* 0: empty or used up */
} HsptPartialBlock;

typedef struct HsptPartialCache {
    HsptPartialBlock e[HSPT_PARTIAL_BLOCKS];
} HsptPartialCache;

static inline HsptPartialBlock *hspt_partial_slot(HsptPartialCache *c,
                                                  uint32_t va_pfn)
{
    return &c->e[hspt_block_hash(va_pfn, HSPT_PARTIAL_BITS)];
}

/* True (and one credit used) if the block is known to hold clean pages. */
static inline bool hspt_partial_known(HsptPartialCache *c, uint32_t va_pfn,
                                      uint32_t npages, uint32_t rp)
{
    HsptPartialBlock *w = hspt_partial_slot(c, va_pfn);

    if (w->credit && w->va_pfn == va_pfn && w->npages == npages &&
        w->rp == rp) {
        w->credit--;
        return true;
    }
    return false;
}

static inline void hspt_partial_add(HsptPartialCache *c, uint32_t va_pfn,
                                    uint32_t npages, uint32_t rp)
{
    *hspt_partial_slot(c, va_pfn) = (HsptPartialBlock) {
        va_pfn, npages, rp, HSPT_PARTIAL_CREDIT };
}

/*
 * Next set bit at or after START of the SIZE-bit bitmap MAP, which is
 * sparse: bit W of SUMMARY is set whenever word W of MAP may be nonzero
 * (a superset: words that became zero may keep their bit). Scans the
 * summary (one bit per 64 pages) instead of all of MAP, which for a 4 GiB
 * slot is 128 KiB read, and evicted from the host caches, per scan.
 * Without a SUMMARY, find_next_bit().
 */
static inline unsigned long hspt_find_next_sparse(const unsigned long *map,
                                                  const unsigned long *summary,
                                                  unsigned long size,
                                                  unsigned long start)
{
    unsigned long nwords = BITS_TO_LONGS(size);
    unsigned long w = start / BITS_PER_LONG;
    unsigned long word;

    if (!summary) {
        return find_next_bit(map, size, start);
    }
    if (start >= size) {
        return size;
    }
    word = map[w] & (~0UL << (start % BITS_PER_LONG));
    while (!word) {
        w = find_next_bit(summary, nwords, w + 1);
        if (w >= nwords) {
            return size;
        }
        word = map[w];
    }
    return MIN(w * BITS_PER_LONG + ctzl(word), size);
}

/*
 * Empty the SIZE-bit bitmap MAP and its SUMMARY (see
 * hspt_find_next_sparse()) by zeroing only the words the summary flags:
 * a wholesale flush of a 4 GiB slot would otherwise write 128 KiB per
 * bitmap. OTHER, if not NULL, is a bitmap whose bits are set only where
 * MAP's are (the writable pages), emptied the same way.
 */
static inline void hspt_zero_sparse(unsigned long *map, unsigned long *other,
                                    unsigned long *summary, unsigned long size)
{
    unsigned long nwords = BITS_TO_LONGS(size);

    for (unsigned long w = find_first_bit(summary, nwords); w < nwords;
         w = find_next_bit(summary, nwords, w + 1)) {
        map[w] = 0;
        if (other) {
            other[w] = 0;
        }
    }
    bitmap_zero(summary, nwords);
}

/*
 * The number of maximal runs of set bits of MAP (SIZE bits) that touch
 * [FIRST - 1, FIRST + N]: changing bits of [FIRST, FIRST + N) changes the
 * run count of the whole map by the difference of two such counts.
 */
static inline unsigned hspt_runs_around(const unsigned long *map,
                                        unsigned long size,
                                        unsigned long first, unsigned long n)
{
    unsigned long lo = first ? first - 1 : 0;
    unsigned long hi = MIN(first + n + 1, size);
    unsigned runs = 0;
    bool prev = false;

    for (unsigned long i = lo; i < hi; i++) {
        bool set = test_bit(i, map);

        runs += set && !prev;
        prev = set;
    }
    return runs;
}

static inline int hspt_key_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * Sort the N page keys of V (any packing in which adjacent pages have
 * adjacent keys) and drop duplicates; returns how many remain.
 */
static inline unsigned hspt_sort_unique(uint32_t *v, unsigned n)
{
    unsigned k = 0;

    qsort(v, n, sizeof(*v), hspt_key_cmp);
    for (unsigned i = 0; i < n; i++) {
        if (k == 0 || v[i] != v[k - 1]) {
            v[k++] = v[i];
        }
    }
    return k;
}

/* How many keys from V[I] on (sorted, unique) are consecutive. */
static inline unsigned hspt_run_length(const uint32_t *v, unsigned n,
                                       unsigned i)
{
    unsigned len = 1;

    while (i + len < n && v[i + len] == v[i] + len) {
        len++;
    }
    return len;
}

/*
 * A run of guest pages: a large page mapped whole (one mmap) since the last
 * slot flush, or a unit of revalidation (one page, or such a block).
 */
typedef struct HsptBlock {
    uint32_t va_pfn;
    uint32_t npages;
} HsptBlock;

/*
 * Split the NPAGES-page bitmap MAPPED of a slot (with its SUMMARY, see
 * hspt_find_next_sparse(); may be NULL) into revalidation units:
 * every mapped page outside BLOCKS (sorted by va_pfn, not overlapping) on
 * its own, every block as one unit from its first page. Returns the number
 * of units written to OUT, or -1 if there are more than MAX or a block is
 * no longer mapped from its first page (then it cannot be treated whole).
 */
static inline int hspt_revalidation_units(const unsigned long *mapped,
                                          const unsigned long *summary,
                                          size_t npages,
                                          const HsptBlock *blocks,
                                          unsigned n_blocks,
                                          HsptBlock *out, unsigned max)
{
    unsigned n = 0, b = 0;

    for (unsigned long pfn = hspt_find_next_sparse(mapped, summary, npages, 0);
         pfn < npages;
         pfn = hspt_find_next_sparse(mapped, summary, npages, pfn + 1)) {
        uint32_t len = 1;

        while (b < n_blocks && blocks[b].va_pfn + blocks[b].npages <= pfn) {
            b++;
        }
        if (b < n_blocks && blocks[b].va_pfn <= pfn) {
            if (blocks[b].va_pfn != pfn) {
                return -1;
            }
            len = blocks[b].npages;
        }
        if (n == max) {
            return -1;
        }
        out[n++] = (HsptBlock) { pfn, len };
        pfn += len - 1;
    }
    return n;
}

/*
 * A reverse-map entry names one shadow page: vCPU, space, slot and guest
 * page number (32-bit VAs with 4 KiB pages: 20 bits).
 */
#define HSPT_RMAP_VA_BITS     20
#define HSPT_RMAP_SLOT_SHIFT  20
#define HSPT_RMAP_SPACE_SHIFT 24
#define HSPT_RMAP_CPU_SHIFT   40

typedef struct HsptRmapRef {
    unsigned cpu;       /* < 2^24 */
    unsigned space;     /* < 2^16 */
    unsigned slot;      /* < 16 */
    uint32_t va_pfn;    /* < 2^20 */
} HsptRmapRef;

static inline uint64_t hspt_rmap_pack(HsptRmapRef r)
{
    return (uint64_t)r.cpu << HSPT_RMAP_CPU_SHIFT |
           (uint64_t)r.space << HSPT_RMAP_SPACE_SHIFT |
           (uint64_t)r.slot << HSPT_RMAP_SLOT_SHIFT | r.va_pfn;
}

static inline HsptRmapRef hspt_rmap_unpack(uint64_t e)
{
    return (HsptRmapRef) {
        .cpu = e >> HSPT_RMAP_CPU_SHIFT,
        .space = (e >> HSPT_RMAP_SPACE_SHIFT) & 0xffff,
        .slot = (e >> HSPT_RMAP_SLOT_SHIFT) & 0xf,
        .va_pfn = e & ((1u << HSPT_RMAP_VA_BITS) - 1),
    };
}

/*
 * Per-page flush counts of a region, scoped to an epoch of its space: a
 * count byte holds the epoch's generation in its top bits and the count in
 * the rest, so a new epoch starts every page at zero without clearing the
 * array. A page whose count reaches the hot limit within one epoch stays
 * hot in later epochs (HSPT_FLUSH_HOT) until the array is cleared.
 */
#define HSPT_FLUSH_GEN_SHIFT 5
#define HSPT_FLUSH_HOT 0xff
/* Counts saturate here, below the bits of HSPT_FLUSH_HOT. */
#define HSPT_FLUSH_COUNT_MAX ((1u << HSPT_FLUSH_GEN_SHIFT) - 2)

static inline bool hspt_flush_hot(uint8_t e)
{
    return e == HSPT_FLUSH_HOT;
}

static inline unsigned hspt_flush_count(uint8_t e, uint8_t gen)
{
    if (hspt_flush_hot(e)) {
        return HSPT_FLUSH_COUNT_MAX;
    }
    return (e >> HSPT_FLUSH_GEN_SHIFT) ==
           (gen & (0xff >> HSPT_FLUSH_GEN_SHIFT)) ?
           e & ((1u << HSPT_FLUSH_GEN_SHIFT) - 1) : 0;
}

/*
 * Count one more flush of entry *E in generation GEN; true if that makes
 * it hot (HOT_LIMIT flushes in GEN, HOT_LIMIT <= HSPT_FLUSH_COUNT_MAX).
 */
static inline bool hspt_flush_count_inc(uint8_t *e, uint8_t gen,
                                        unsigned hot_limit)
{
    unsigned n;

    if (hspt_flush_hot(*e)) {
        return false;
    }
    n = MIN(hspt_flush_count(*e, gen) + 1, HSPT_FLUSH_COUNT_MAX);
    if (n >= hot_limit) {
        *e = HSPT_FLUSH_HOT;
        return true;
    }
    *e = (uint8_t)(gen << HSPT_FLUSH_GEN_SHIFT) | n;
    return false;
}

/*
 * Contexts seen recently that hold no shadow space yet, with when each was
 * first seen (host ns). A context is young for PERIOD ns after that, and
 * one not seen for longer than PERIOD starts over: a process that died
 * leaves its ASID to a new one.
 */
#define HSPT_YOUNG_KEY_WORDS 3
#define HSPT_YOUNG_MAX 16

typedef struct HsptYoung {
    uint64_t key[HSPT_YOUNG_KEY_WORDS];
    int64_t born;
    int64_t last_seen;
    bool valid;
} HsptYoung;

static inline HsptYoung *hspt_young_find(HsptYoung *tab, const uint64_t *key)
{
    for (unsigned i = 0; i < HSPT_YOUNG_MAX; i++) {
        if (tab[i].valid &&
            !memcmp(tab[i].key, key, sizeof(tab[i].key))) {
            return &tab[i];
        }
    }
    return NULL;
}

/*
 * KEY is current at NOW. True while it is young; once it is not, its entry
 * is dropped (the context gets a space of its own). A new key takes a free
 * entry or the one seen least recently.
 */
static inline bool hspt_young_seen(HsptYoung *tab, const uint64_t *key,
                                   int64_t now, int64_t period)
{
    HsptYoung *y = hspt_young_find(tab, key);

    if (!y) {
        y = &tab[0];
        for (unsigned i = 0; i < HSPT_YOUNG_MAX && y->valid; i++) {
            if (!tab[i].valid || tab[i].last_seen < y->last_seen) {
                y = &tab[i];
            }
        }
        memcpy(y->key, key, sizeof(y->key));
        y->valid = false;
    }
    if (!y->valid || now - y->last_seen > period) {
        y->born = now;
        y->valid = true;
    }
    y->last_seen = now;
    if (now - y->born < period) {
        return true;
    }
    y->valid = false;
    return false;
}

#endif
