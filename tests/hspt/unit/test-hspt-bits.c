/*
 * Unit tests for the pure shadow bookkeeping pieces: the large pages
 * of a region, the reverse-map entry encoding, the split of a region
 * into revalidation units, the sparse bitmap search, page flush counts
 * and the cache of large pages mapped whole.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/units.h"
#include "hspt-bits.h"

static void test_lp_empty(void)
{
    HsptLargePages lp = { false };

    g_assert_false(hspt_lp_covers(&lp, 0));
    g_assert_false(hspt_lp_covers(&lp, 0xc0000000));
}

static void test_lp_one_section(void)
{
    HsptLargePages lp = { false };

    hspt_lp_add(&lp, 0xc0123000, 20);          /* 1 MiB section */
    g_assert_cmphex(lp.addr, ==, 0xc0100000);
    g_assert_true(hspt_lp_covers(&lp, 0xc0100000));
    g_assert_true(hspt_lp_covers(&lp, 0xc01ff000));
    g_assert_false(hspt_lp_covers(&lp, 0xc0200000));
    g_assert_false(hspt_lp_covers(&lp, 0xc00ff000));
}

static void test_lp_widens_to_cover_both(void)
{
    HsptLargePages lp = { false };

    hspt_lp_add(&lp, 0xc0000000, 21);          /* 2 MiB LPAE block */
    hspt_lp_add(&lp, 0xc0600000, 16);          /* 64 KiB page */
    /* Smallest aligned range holding both: 0xc0000000-0xc07fffff. */
    g_assert_cmphex(lp.addr, ==, 0xc0000000);
    g_assert_cmphex(lp.mask, ==, 0xff800000);
    g_assert_true(hspt_lp_covers(&lp, 0xc0400000));
    g_assert_false(hspt_lp_covers(&lp, 0xc0800000));
    hspt_lp_reset(&lp);
    g_assert_false(hspt_lp_covers(&lp, 0xc0000000));
}

static void test_lp_opposite_halves(void)
{
    HsptLargePages lp = { false };

    hspt_lp_add(&lp, 0x00100000, 20);
    hspt_lp_add(&lp, 0xfff00000, 20);
    g_assert_cmphex(lp.mask, ==, 0);           /* the whole 4 GiB */
    g_assert_true(hspt_lp_covers(&lp, 0x1000));
    g_assert_true(hspt_lp_covers(&lp, 0x80000000));
}

/* hspt_lp_extent() of VA in LP is [FIRST, FIRST + SIZE). */
static void assert_lp_extent(const HsptLargePages *lp, uint32_t va,
                             uint32_t first, uint64_t size)
{
    uint32_t got_first;
    uint64_t got_size;

    hspt_lp_extent(lp, va, &got_first, &got_size);
    g_assert_cmphex(got_first, ==, first);
    g_assert_cmphex(got_size, ==, size);
}

/* With ORDER: only the granules of large pages count. */
static void test_lp_precise_between_blocks(void)
{
    g_autofree uint8_t *order = g_new0(uint8_t, HSPT_LP_GRANULES);
    HsptLargePages lp = { .order = order };

    /* Linear-map blocks, then a kmap slot's 4 KiB page far above them. */
    hspt_lp_add(&lp, 0xc0000000, 21);
    hspt_lp_add(&lp, 0xc0234000, 21);
    hspt_lp_add(&lp, 0xc0600000, 16);
    g_assert_cmphex(lp.mask, ==, 0xff800000);  /* the bound still widens */
    g_assert_true(hspt_lp_covers(&lp, 0xc01ff000));
    g_assert_true(hspt_lp_covers(&lp, 0xc0200000));
    g_assert_true(hspt_lp_covers(&lp, 0xc060f000));
    g_assert_false(hspt_lp_covers(&lp, 0xc0400000));
    g_assert_false(hspt_lp_covers(&lp, 0xc0610000));
    g_assert_false(hspt_lp_covers(&lp, 0xffe00000));

    assert_lp_extent(&lp, 0xc0345000, 0xc0200000, 2 * MiB);
    hspt_lp_forget(&lp, 0xc0200000, 2 * MiB);
    g_assert_false(hspt_lp_covers(&lp, 0xc0200000));
    g_assert_true(hspt_lp_covers(&lp, 0xc0000000));

    hspt_lp_reset(&lp);
    for (uint32_t g = 0; g < HSPT_LP_GRANULES; g++) {
        g_assert_cmpuint(order[g], ==, 0);
    }
}

/* A large page inside a larger one goes with it; the larger one counts. */
static void test_lp_precise_nested(void)
{
    g_autofree uint8_t *order = g_new0(uint8_t, HSPT_LP_GRANULES);
    HsptLargePages lp = { .order = order };

    hspt_lp_add(&lp, 0x40010000, 16);          /* 64 KiB page */
    hspt_lp_add(&lp, 0x40000000, 24);          /* supersection around it */
    assert_lp_extent(&lp, 0x40010000, 0x40000000, 16 * MiB);
    hspt_lp_forget(&lp, 0x40000000, 16 * MiB);
    g_assert_false(hspt_lp_covers(&lp, 0x40010000));
    g_assert_false(hspt_lp_covers(&lp, 0x40ff0000));

    /* A 1 GiB LPAE block, and the whole 4 GiB. */
    hspt_lp_add(&lp, 0x80000000, 30);
    assert_lp_extent(&lp, 0xbffff000, 0x80000000, 1 * GiB);
    g_assert_false(hspt_lp_covers(&lp, 0x7ffff000));
    hspt_lp_add(&lp, 0x1000, 32);
    assert_lp_extent(&lp, 0x7ffff000, 0, 4 * GiB);
}

/* Without ORDER the extent is the whole covered range. */
static void test_lp_coarse_extent(void)
{
    HsptLargePages lp = { false };

    hspt_lp_add(&lp, 0xc0000000, 21);
    hspt_lp_add(&lp, 0xc0600000, 16);
    assert_lp_extent(&lp, 0xc0400000, 0xc0000000, 8 * MiB);
    hspt_lp_forget(&lp, 0xc0000000, 8 * MiB);
    g_assert_false(hspt_lp_covers(&lp, 0xc0000000));
}

static void test_rmap_roundtrip(void)
{
    HsptRmapRef in[] = {
        { 0, 0, 0, 0 },
        { 3, 255, 2, 0xfffff },
        { 0xffffff, 0xffff, 15, 0x12345 },
    };

    for (int i = 0; i < ARRAY_SIZE(in); i++) {
        HsptRmapRef out = hspt_rmap_unpack(hspt_rmap_pack(in[i]));

        g_assert_cmpuint(out.cpu, ==, in[i].cpu);
        g_assert_cmpuint(out.space, ==, in[i].space);
        g_assert_cmpuint(out.slot, ==, in[i].slot);
        g_assert_cmpuint(out.va_pfn, ==, in[i].va_pfn);
    }
    g_assert_cmphex(hspt_rmap_pack(in[0]), !=, hspt_rmap_pack(in[1]));
}

/* A slot: pages 5, a 512-page block at 512, and page 2000 mapped. */
static unsigned long *units_slot(void)
{
    unsigned long *mapped = bitmap_new(4096);

    set_bit(5, mapped);
    bitmap_set(mapped, 512, 512);
    set_bit(2000, mapped);
    return mapped;
}

static void test_units_pages_and_blocks(void)
{
    g_autofree unsigned long *mapped = units_slot();
    HsptBlock blocks[] = { { 512, 512 } };
    HsptBlock out[8];

    g_assert_cmpint(hspt_revalidation_units(mapped, NULL, 4096, blocks, 1, out, 8),
                    ==, 3);
    g_assert_cmpuint(out[0].va_pfn, ==, 5);
    g_assert_cmpuint(out[0].npages, ==, 1);
    g_assert_cmpuint(out[1].va_pfn, ==, 512);
    g_assert_cmpuint(out[1].npages, ==, 512);
    g_assert_cmpuint(out[2].va_pfn, ==, 2000);
    g_assert_cmpuint(out[2].npages, ==, 1);
}

static void test_units_without_blocks(void)
{
    g_autofree unsigned long *mapped = units_slot();
    HsptBlock out[1024];

    /* Pages of a large page mapped one by one are single units. */
    g_assert_cmpint(hspt_revalidation_units(mapped, NULL, 4096, NULL, 0, out, 1024),
                    ==, 514);
    g_assert_cmpuint(out[513].va_pfn, ==, 2000);
}

static void test_units_block_head_unmapped(void)
{
    g_autofree unsigned long *mapped = units_slot();
    HsptBlock blocks[] = { { 512, 512 } };
    HsptBlock out[8];

    /* A block that lost its first page cannot be revalidated whole. */
    clear_bit(512, mapped);
    g_assert_cmpint(hspt_revalidation_units(mapped, NULL, 4096, blocks, 1, out, 8),
                    ==, -1);
    /* One that lost later pages still can (its lookup maps it again). */
    set_bit(512, mapped);
    clear_bit(700, mapped);
    g_assert_cmpint(hspt_revalidation_units(mapped, NULL, 4096, blocks, 1, out, 8),
                    ==, 3);
}

static void test_units_too_many(void)
{
    g_autofree unsigned long *mapped = units_slot();
    HsptBlock blocks[] = { { 512, 512 } };
    HsptBlock out[2];

    g_assert_cmpint(hspt_revalidation_units(mapped, NULL, 4096, blocks, 1, out, 2),
                    ==, -1);
}

static void test_flush_count_per_generation(void)
{
    uint8_t e = 0;

    /* A fresh (zeroed) entry counts 0 in generation 0 and in others. */
    g_assert_cmpuint(hspt_flush_count(e, 0), ==, 0);
    g_assert_cmpuint(hspt_flush_count(e, 5), ==, 0);
    for (unsigned i = 1; i < 16; i++) {
        g_assert_false(hspt_flush_count_inc(&e, 3, 16));
        g_assert_cmpuint(hspt_flush_count(e, 3), ==, i);
    }
    /* Another generation starts from zero... */
    g_assert_cmpuint(hspt_flush_count(e, 4), ==, 0);
    g_assert_false(hspt_flush_count_inc(&e, 4, 16));
    g_assert_cmpuint(hspt_flush_count(e, 4), ==, 1);
    g_assert_cmpuint(hspt_flush_count(e, 3), ==, 0);
    /* ... and only the low bits of the generation are kept. */
    g_assert_cmpuint(hspt_flush_count(e, 4 + 8), ==, 1);
    g_assert_false(hspt_flush_hot(e));
}

static void test_flush_count_hot_sticks(void)
{
    uint8_t e = 0;

    for (unsigned i = 1; i < 16; i++) {
        g_assert_false(hspt_flush_count_inc(&e, 7, 16));
    }
    g_assert_true(hspt_flush_count_inc(&e, 7, 16));
    g_assert_true(hspt_flush_hot(e));
    /* Hot once: later generations and flushes keep it hot, reported once. */
    g_assert_false(hspt_flush_count_inc(&e, 0, 16));
    g_assert_true(hspt_flush_hot(e));
    g_assert_cmpuint(hspt_flush_count(e, 1), >=, 16);
}

static void test_flush_count_not_hot_by_saturation(void)
{
    uint8_t e = 0;

    /* Without a reachable limit, counts saturate but never read as hot. */
    for (unsigned i = 0; i < 100; i++) {
        g_assert_false(hspt_flush_count_inc(&e, 7, HSPT_FLUSH_COUNT_MAX + 1));
    }
    g_assert_false(hspt_flush_hot(e));
}

static void test_whole_exact_match(void)
{
    HsptWholeCache c = { .n = 0 };

    hspt_whole_add(&c, 0xc0000, 512, 0x40000, false);
    g_assert_true(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, false));
    /* other RAM, other rights, other size: not known to be mapped so */
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 512, 0x40200, false));
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, true));
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 256, 0x40000, false));
    g_assert_false(hspt_whole_maps(&c, 0xc0200, 512, 0x40200, false));
}

static void test_whole_drop_on_any_page(void)
{
    HsptWholeCache c = { .n = 0 };

    hspt_whole_add(&c, 0xc0000, 512, 0x40000, true);
    hspt_whole_add(&c, 0xc0200, 512, 0x40200, true);
    /* the last page of the first block changes (write-protect, unmap) */
    hspt_whole_drop(&c, 0xc01ff, 1);
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, true));
    g_assert_true(hspt_whole_maps(&c, 0xc0200, 512, 0x40200, true));
    /* a range overlapping the second block's head */
    hspt_whole_drop(&c, 0xc01f0, 0x20);
    g_assert_false(hspt_whole_maps(&c, 0xc0200, 512, 0x40200, true));
    g_assert_cmpuint(c.n, ==, 0);
}

static void test_whole_add_replaces(void)
{
    HsptWholeCache c = { .n = 0 };

    hspt_whole_add(&c, 0xc0000, 512, 0x40000, true);
    hspt_whole_add(&c, 0xc0000, 512, 0x40000, false);  /* remapped RO */
    g_assert_cmpuint(c.n, ==, 1);
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, true));
    g_assert_true(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, false));
    hspt_whole_reset(&c);
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, false));
}

static void test_whole_many_blocks(void)
{
    HsptWholeCache c = { .n = 0 };
    unsigned known = 0;

    /*
     * A kernel linear map's worth of 2 MiB blocks: the latest is always
     * known, most of the others too (collisions replace), and the count
     * of entries matches what is known.
     */
    for (uint32_t i = 0; i < 256; i++) {
        hspt_whole_add(&c, 0xc0000 + i * 512, 512, 0x40000 + i * 512, true);
        g_assert_true(hspt_whole_maps(&c, 0xc0000 + i * 512, 512,
                                      0x40000 + i * 512, true));
    }
    for (uint32_t i = 0; i < 256; i++) {
        known += hspt_whole_maps(&c, 0xc0000 + i * 512, 512,
                                 0x40000 + i * 512, true);
    }
    g_assert_cmpuint(known, ==, c.n);
    g_assert_cmpuint(known, >=, 128);
    /* a page of each block changes: nothing stays known */
    for (uint32_t i = 0; i < 256; i++) {
        hspt_whole_drop(&c, 0xc0000 + i * 512 + 77, 1);
    }
    g_assert_cmpuint(c.n, ==, 0);
}

/* Unaligned or odd-sized runs are not cached; sizes keep apart. */
static void test_whole_aligned_only(void)
{
    HsptWholeCache c = { .n = 0 };

    hspt_whole_add(&c, 0xc0100, 512, 0x40000, true);
    hspt_whole_add(&c, 0xc0000, 300, 0x40000, true);
    g_assert_cmpuint(c.n, ==, 0);
    hspt_whole_add(&c, 0xc0000, 16, 0x40000, true);
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 512, 0x40000, true));
    g_assert_true(hspt_whole_maps(&c, 0xc0000, 16, 0x40000, true));
    /* a bigger block over it replaces it */
    hspt_whole_add(&c, 0xc0000, 4096, 0x40000, false);
    g_assert_false(hspt_whole_maps(&c, 0xc0000, 16, 0x40000, true));
    g_assert_true(hspt_whole_maps(&c, 0xc0000, 4096, 0x40000, false));
    hspt_whole_drop(&c, 0xc0fff, 1);
    g_assert_cmpuint(c.n, ==, 0);
}

/* A block known to hold clean pages is trusted a bounded number of times. */
static void test_partial_credit(void)
{
    HsptPartialCache c = { 0 };
    unsigned hits = 0;

    g_assert_false(hspt_partial_known(&c, 0xc1800, 512, 0x41800));
    hspt_partial_add(&c, 0xc1800, 512, 0x41800);
    /* another size, another RAM block: not this entry */
    g_assert_false(hspt_partial_known(&c, 0xc1800, 256, 0x41800));
    g_assert_false(hspt_partial_known(&c, 0xc1800, 512, 0x51800));
    while (hspt_partial_known(&c, 0xc1800, 512, 0x41800)) {
        hits++;
    }
    g_assert_cmpuint(hits, ==, HSPT_PARTIAL_CREDIT);
    hspt_partial_add(&c, 0xc1800, 512, 0x41800);     /* checked again */
    g_assert_true(hspt_partial_known(&c, 0xc1800, 512, 0x41800));
}

static void test_sparse_next(void)
{
    enum { PAGES = 64 * 256 };
    unsigned long *map = bitmap_new(PAGES);
    unsigned long *summary = bitmap_new(PAGES / BITS_PER_LONG);
    const unsigned long pages[] = { 3, 64, 130, 131, PAGES - 1 };

    for (unsigned i = 0; i < ARRAY_SIZE(pages); i++) {
        set_bit(pages[i], map);
        set_bit(pages[i] / BITS_PER_LONG, summary);
    }
    /* a stale summary bit (word 100 became empty) is only skipped */
    set_bit(100, summary);
    for (unsigned long start = 0; start <= PAGES; start++) {
        g_assert_cmpuint(hspt_find_next_sparse(map, summary, PAGES, start),
                         ==, find_next_bit(map, PAGES, start));
    }
    g_assert_cmpuint(hspt_find_next_sparse(map, NULL, PAGES, 4), ==, 64);
    /* nothing left after the last page */
    clear_bit(PAGES - 1, map);
    g_assert_cmpuint(hspt_find_next_sparse(map, summary, PAGES, 132), ==,
                     PAGES);
    g_free(map);
    g_free(summary);
}

static void test_sparse_zero(void)
{
    enum { PAGES = 64 * 256 };
    unsigned long *map = bitmap_new(PAGES);
    unsigned long *writable = bitmap_new(PAGES);
    unsigned long *summary = bitmap_new(PAGES / BITS_PER_LONG);
    const unsigned long pages[] = { 0, 63, 64, 4000, 4001, PAGES - 1 };

    for (unsigned i = 0; i < ARRAY_SIZE(pages); i++) {
        set_bit(pages[i], map);
        set_bit(pages[i] / BITS_PER_LONG, summary);
        if (i & 1) {
            set_bit(pages[i], writable);
        }
    }
    set_bit(200, summary);      /* stale: its word is already empty */
    hspt_zero_sparse(map, writable, summary, PAGES);
    g_assert_cmpuint(find_first_bit(map, PAGES), ==, PAGES);
    g_assert_cmpuint(find_first_bit(writable, PAGES), ==, PAGES);
    g_assert_cmpuint(find_first_bit(summary, PAGES / BITS_PER_LONG), ==,
                     PAGES / BITS_PER_LONG);
    /* without a second bitmap */
    set_bit(5, map);
    set_bit(0, summary);
    hspt_zero_sparse(map, NULL, summary, PAGES);
    g_assert_cmpuint(find_first_bit(map, PAGES), ==, PAGES);
    g_free(map);
    g_free(writable);
    g_free(summary);
}

static void test_units_with_summary(void)
{
    unsigned long *mapped = bitmap_new(4096);
    unsigned long *summary = bitmap_new(4096 / BITS_PER_LONG);
    HsptBlock blocks[] = { { 512, 512 } };
    HsptBlock out[8];

    for (unsigned long pfn = 512; pfn < 1024; pfn++) {
        set_bit(pfn, mapped);
    }
    set_bit(5, mapped);
    set_bit(3000, mapped);
    for (unsigned long w = 0; w < 4096 / BITS_PER_LONG; w++) {
        if (mapped[w]) {
            set_bit(w, summary);
        }
    }
    g_assert_cmpint(hspt_revalidation_units(mapped, summary, 4096, blocks, 1,
                                            out, 8), ==, 3);
    g_assert_cmpuint(out[0].va_pfn, ==, 5);
    g_assert_cmpuint(out[1].va_pfn, ==, 512);
    g_assert_cmpuint(out[1].npages, ==, 512);
    g_assert_cmpuint(out[2].va_pfn, ==, 3000);
    g_free(mapped);
    g_free(summary);
}

/* Total run count of MAP, the slow way. */
static unsigned count_runs(const unsigned long *map, unsigned long size)
{
    unsigned runs = 0;

    for (unsigned long i = 0; i < size; i++) {
        runs += test_bit(i, map) && (i == 0 || !test_bit(i - 1, map));
    }
    return runs;
}

/*
 * Setting or clearing any range changes the total by the change of
 * hspt_runs_around() over that range, at the map's edges too.
 */
static void test_runs_delta(void)
{
    const unsigned long size = 256;
    unsigned long *map = bitmap_new(size);
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
        unsigned long first, n;
        unsigned before_total = count_runs(map, size), before, after;

        seed = seed * 1103515245 + 12345;
        first = (seed >> 8) % size;
        n = 1 + (seed >> 20) % 8;
        n = MIN(n, size - first);
        if (round % 7 == 0) {
            first = round % 14 ? 0 : size - n;    /* the edges */
        }
        before = hspt_runs_around(map, size, first, n);
        if (seed & 1) {
            bitmap_set(map, first, n);
        } else {
            bitmap_clear(map, first, n);
        }
        after = hspt_runs_around(map, size, first, n);
        g_assert_cmpint((int)count_runs(map, size) - (int)before_total, ==,
                        (int)after - (int)before);
    }
    g_free(map);
}

/*
 * Failed lookups are unmapped per run: keys sorted, duplicates gone, runs
 * split at gaps and at slot boundaries.
 */
static void test_sort_unique_runs(void)
{
    uint32_t v[] = { 9, 3, 4, 5 | 1u << 28, 8, 4, 10, 3, 4 | 1u << 28, 2 };
    unsigned n = hspt_sort_unique(v, ARRAY_SIZE(v));
    static const uint32_t want[] = { 2, 3, 4, 8, 9, 10, 4 | 1u << 28,
                                     5 | 1u << 28 };
    unsigned runs[4], nruns = 0;

    g_assert_cmpuint(n, ==, ARRAY_SIZE(want));
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmphex(v[i], ==, want[i]);
    }
    for (unsigned i = 0; i < n; i += runs[nruns++]) {
        runs[nruns] = hspt_run_length(v, n, i);
    }
    g_assert_cmpuint(nruns, ==, 3);
    g_assert_cmpuint(runs[0], ==, 3);
    g_assert_cmpuint(runs[1], ==, 3);
    g_assert_cmpuint(runs[2], ==, 2);
    g_assert_cmpuint(hspt_sort_unique(v, 0), ==, 0);
}

static void young_key(uint64_t *key, uint64_t asid)
{
    key[0] = 0x80000000;        /* TTBCR.EAE */
    key[1] = asid;
    key[2] = 0;
}

static void test_young_grows_up(void)
{
    HsptYoung tab[HSPT_YOUNG_MAX] = {};
    uint64_t a[HSPT_YOUNG_KEY_WORDS], b[HSPT_YOUNG_KEY_WORDS];

    young_key(a, 1);
    young_key(b, 2);
    g_assert_true(hspt_young_seen(tab, a, 0, 2000));
    g_assert_true(hspt_young_seen(tab, b, 500, 2000));
    g_assert_true(hspt_young_seen(tab, a, 1999, 2000));
    /* Its time is up: no longer young, and the entry is gone. */
    g_assert_false(hspt_young_seen(tab, a, 2000, 2000));
    g_assert_null(hspt_young_find(tab, a));
    g_assert_nonnull(hspt_young_find(tab, b));
}

static void test_young_gap_starts_over(void)
{
    HsptYoung tab[HSPT_YOUNG_MAX] = {};
    uint64_t a[HSPT_YOUNG_KEY_WORDS];

    young_key(a, 7);
    g_assert_true(hspt_young_seen(tab, a, 0, 2000));
    /* Not seen for longer than the period: a new process with its ASID. */
    g_assert_true(hspt_young_seen(tab, a, 10000, 2000));
    g_assert_true(hspt_young_seen(tab, a, 11999, 2000));
    g_assert_false(hspt_young_seen(tab, a, 12000, 2000));
}

static void test_young_replaces_least_recent(void)
{
    HsptYoung tab[HSPT_YOUNG_MAX] = {};
    uint64_t k[HSPT_YOUNG_KEY_WORDS];

    for (unsigned i = 0; i < HSPT_YOUNG_MAX; i++) {
        young_key(k, i);
        g_assert_true(hspt_young_seen(tab, k, 100 + i, 2000));
    }
    young_key(k, 0);
    g_assert_true(hspt_young_seen(tab, k, 200, 2000));   /* 0 seen again */
    young_key(k, 99);
    g_assert_true(hspt_young_seen(tab, k, 201, 2000));   /* replaces 1 */
    young_key(k, 1);
    g_assert_null(hspt_young_find(tab, k));
    for (unsigned i = 0; i < HSPT_YOUNG_MAX; i++) {
        young_key(k, i);
        if (i != 1) {
            g_assert_nonnull(hspt_young_find(tab, k));
        }
    }
    young_key(k, 0);
    g_assert_cmpint(hspt_young_find(tab, k)->born, ==, 100);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hspt/lp/empty", test_lp_empty);
    g_test_add_func("/hspt/lp/one-section", test_lp_one_section);
    g_test_add_func("/hspt/lp/widens", test_lp_widens_to_cover_both);
    g_test_add_func("/hspt/lp/opposite-halves", test_lp_opposite_halves);
    g_test_add_func("/hspt/lp/precise-between-blocks",
                    test_lp_precise_between_blocks);
    g_test_add_func("/hspt/lp/precise-nested", test_lp_precise_nested);
    g_test_add_func("/hspt/lp/coarse-extent", test_lp_coarse_extent);
    g_test_add_func("/hspt/rmap/roundtrip", test_rmap_roundtrip);
    g_test_add_func("/hspt/units/pages-and-blocks",
                    test_units_pages_and_blocks);
    g_test_add_func("/hspt/units/without-blocks", test_units_without_blocks);
    g_test_add_func("/hspt/units/block-head-unmapped",
                    test_units_block_head_unmapped);
    g_test_add_func("/hspt/units/too-many", test_units_too_many);
    g_test_add_func("/hspt/flush-count/per-generation",
                    test_flush_count_per_generation);
    g_test_add_func("/hspt/flush-count/hot-sticks",
                    test_flush_count_hot_sticks);
    g_test_add_func("/hspt/flush-count/saturates",
                    test_flush_count_not_hot_by_saturation);
    g_test_add_func("/hspt/sparse/next", test_sparse_next);
    g_test_add_func("/hspt/sparse/zero", test_sparse_zero);
    g_test_add_func("/hspt/runs/delta", test_runs_delta);
    g_test_add_func("/hspt/runs/sorted-keys", test_sort_unique_runs);
    g_test_add_func("/hspt/units/with-summary", test_units_with_summary);
    g_test_add_func("/hspt/whole/exact-match", test_whole_exact_match);
    g_test_add_func("/hspt/whole/drop-on-any-page",
                    test_whole_drop_on_any_page);
    g_test_add_func("/hspt/whole/add-replaces", test_whole_add_replaces);
    g_test_add_func("/hspt/whole/many-blocks", test_whole_many_blocks);
    g_test_add_func("/hspt/whole/aligned-only", test_whole_aligned_only);
    g_test_add_func("/hspt/partial/credit", test_partial_credit);
    g_test_add_func("/hspt/young/grows-up", test_young_grows_up);
    g_test_add_func("/hspt/young/gap-starts-over", test_young_gap_starts_over);
    g_test_add_func("/hspt/young/replaces-least-recent",
                    test_young_replaces_least_recent);
    return g_test_run();
}
