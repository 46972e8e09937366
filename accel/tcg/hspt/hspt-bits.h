/*
 * qemu-hspt: small pure pieces of shadow bookkeeping (unit-tested alone)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_TCG_HSPT_BITS_H
#define ACCEL_TCG_HSPT_BITS_H

/*
 * The union of the large guest pages filled into a region since its last
 * flush, kept as one aligned range like the softmmu TLB's large-page
 * region: invalidating any page inside it must drop the whole region,
 * since a TLBI of one page of a section invalidates the section.
 */
typedef struct HsptLargePages {
    bool any;           /* false: no large page since the last flush */
    uint32_t addr;
    uint32_t mask;      /* may widen to 0: all 4 GiB */
} HsptLargePages;

static inline void hspt_lp_reset(HsptLargePages *lp)
{
    lp->any = false;
}

static inline void hspt_lp_add(HsptLargePages *lp, uint32_t va,
                               unsigned lg_page_size)
{
    uint32_t mask = lg_page_size >= 32 ? 0 : ~(uint32_t)0 << lg_page_size;

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
    return lp->any && ((va ^ lp->addr) & lp->mask) == 0;
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

#endif
