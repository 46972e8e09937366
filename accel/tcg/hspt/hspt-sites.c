/*
 * qemu-hspt: access sites that a shadow mapping cannot serve
 *
 * A direct access to MMIO, to a watched page or to a page that must stay
 * write-protected faults every time. After HSPT_SITE_MISS_LIMIT such
 * faults in one translation block, the block is invalidated and
 * retranslated with the ordinary softmmu fast path for all its accesses,
 * so a device driver's polling loop stops paying a signal per access.
 *
 * Code that only faulted for a while (first touches of fresh memory in
 * each new process) would stay on softmmu for good and pay a softmmu
 * refill after every context switch. Slow-path lookups of a softmmu-only
 * block that find their page already shadow-mapped show that the direct
 * path would have served them: after enough of them the block returns to
 * it, and must earn its next return twice over.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/thread.h"
#include "exec/translation-block.h"
#include "tcg/tcg.h"
#include "hspt.h"
#include "hspt-internal.h"
#include "trace.h"

/* From exec/exec-all.h, which target-independent code cannot include. */
void tb_phys_invalidate(TranslationBlock *tb, tb_page_addr_t page_addr);

#define HSPT_SITE_MISS_LIMIT 16
/* One found-mapped lookup in this many is traced back to its TB. */
#define HSPT_SITE_SAMPLE 16
/* Sampled found-mapped lookups before the first return to direct. */
#define HSPT_SITE_RETURN_CREDIT 64
/* Each return doubles the credit needed for the next, up to this often. */
#define HSPT_SITE_RETURNS_MAX 8

/* A translation block's start, by physical PC. */
typedef struct HsptSite {
    unsigned misses;    /* since the site last changed paths */
    unsigned credit;    /* sampled found-mapped lookups while softmmu-only */
    unsigned returns;   /* times it went back to the direct path */
    bool softmmu;       /* blocks starting here use the softmmu path */
} HsptSite;

/* Physical PC of a TB -> HsptSite. */
static GHashTable *hspt_sites;
static QemuMutex hspt_sites_lock;
/* Bumped when a site changes paths, to drop per-thread caches. */
static unsigned hspt_sites_gen;

void hspt_sites_init(void)
{
    qemu_mutex_init(&hspt_sites_lock);
    hspt_sites = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                       g_free);
}

/* The site of KEY, created if need be; with hspt_sites_lock held. */
static HsptSite *hspt_site_get(int64_t key)
{
    HsptSite *site = g_hash_table_lookup(hspt_sites, &key);

    if (!site) {
        site = g_new0(HsptSite, 1);
        g_hash_table_insert(hspt_sites, g_memdup2(&key, sizeof(key)), site);
    }
    return site;
}

/*
 * Invalidate TB, also while it runs (as for self-modifying code: it runs
 * to its end and is not entered again). Alone, for a vCPU that gave up
 * its shadow, it is not a site mark: other vCPUs may still use the direct
 * path there, and that vCPU's next lookup (CF_HSPT_SOFTMMU) translates
 * the block without it.
 */
void hspt_tb_drop(const TranslationBlock *tb)
{
    tb_phys_invalidate((TranslationBlock *)tb, -1);
}

/*
 * A redirected access of TB could not be given a mapping; LASTING if it
 * will not get one soon either (a hot page), so that counting is moot.
 * Called from the slow path with no lock held (see hspt_tb_drop()).
 */
void hspt_site_miss(const TranslationBlock *tb, bool lasting)
{
    int64_t key = tb->page_addr[0];
    HsptSite *site;

    if (key == -1) {
        return;
    }
    qemu_mutex_lock(&hspt_sites_lock);
    site = hspt_site_get(key);
    /*
     * Also when the site is softmmu-only already: TBs for the same code
     * with other CPU flags were translated before and fault alike.
     */
    if (!site->softmmu && !lasting &&
        ++site->misses < HSPT_SITE_MISS_LIMIT) {
        qemu_mutex_unlock(&hspt_sites_lock);
        return;
    }
    if (!site->softmmu) {
        trace_hspt_site_softmmu(key);
        site->softmmu = true;
        site->misses = 0;
        site->credit = 0;
        qatomic_inc(&hspt_sites_gen);
    }
    qatomic_inc(&hspt_stats.softmmu_tbs);
    qemu_mutex_unlock(&hspt_sites_lock);
    hspt_tb_drop(tb);
}

/* Whether the site of TB has gone to softmmu (see hspt_site_miss()). */
static bool hspt_site_softmmu(const TranslationBlock *tb)
{
    static __thread int64_t cached_key = -1;
    static __thread unsigned cached_gen;
    static __thread bool cached;
    int64_t key = tb ? tb->page_addr[0] : -1;
    unsigned gen = qatomic_read(&hspt_sites_gen);

    if (key == -1 || gen == 0) {
        return false;
    }
    if (key != cached_key || gen != cached_gen) {
        HsptSite *site;

        qemu_mutex_lock(&hspt_sites_lock);
        site = g_hash_table_lookup(hspt_sites, &key);
        cached = site && site->softmmu;
        qemu_mutex_unlock(&hspt_sites_lock);
        cached_key = key;
        cached_gen = gen;
    }
    return cached;
}

/*
 * A slow-path access of CPU found its page mapped already; RA, if not 0,
 * is the host return address into its softmmu-path block.
 */
void hspt_site_found_mapped(CPUState *cpu, uintptr_t ra)
{
    static __thread unsigned n;
    TranslationBlock *tb;
    HsptSite *site;
    int64_t key;

    qatomic_inc(&hspt_stats.refills_skipped);
    if (!ra || ++n % HSPT_SITE_SAMPLE || !qatomic_read(&hspt_sites_gen)) {
        return;
    }
    tb = tcg_tb_lookup(ra);
    /* A young context's blocks are softmmu-only whatever their site. */
    if (!tb || (tb->cflags & CF_HSPT_SOFTMMU) || !hspt_site_softmmu(tb)) {
        return;
    }
    key = tb->page_addr[0];
    qemu_mutex_lock(&hspt_sites_lock);
    site = hspt_site_get(key);
    if (!site->softmmu || site->returns >= HSPT_SITE_RETURNS_MAX ||
        ++site->credit < HSPT_SITE_RETURN_CREDIT << site->returns) {
        qemu_mutex_unlock(&hspt_sites_lock);
        return;
    }
    trace_hspt_site_direct(key, site->returns);
    site->softmmu = false;
    site->returns++;
    site->misses = 0;
    qatomic_inc(&hspt_sites_gen);
    qatomic_inc(&hspt_stats.direct_tbs);
    qemu_mutex_unlock(&hspt_sites_lock);
    tb_phys_invalidate(tb, -1);
}

bool hspt_tb_softmmu_only(const TranslationBlock *tb)
{
    /* A young context's blocks, or its site's. */
    return (tb && (tb->cflags & CF_HSPT_SOFTMMU)) || hspt_site_softmmu(tb);
}
