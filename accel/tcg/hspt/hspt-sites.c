/*
 * qemu-hspt: access sites that a shadow mapping cannot serve
 *
 * A direct access to MMIO, to a watched page or to a page that must stay
 * write-protected faults every time. After HSPT_SITE_MISS_LIMIT such
 * faults in one translation block, the block is invalidated and
 * retranslated with the ordinary softmmu fast path for all its accesses,
 * so a device driver's polling loop stops paying a signal per access.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/thread.h"
#include "exec/translation-block.h"
#include "hspt.h"
#include "hspt-internal.h"
#include "trace.h"

/* From exec/exec-all.h, which target-independent code cannot include. */
void tb_phys_invalidate(TranslationBlock *tb, tb_page_addr_t page_addr);

#define HSPT_SITE_MISS_LIMIT 16

/* Physical PC of a TB -> misses; and the set retranslated on softmmu. */
static GHashTable *hspt_site_misses;
static GHashTable *hspt_softmmu_tbs;
static QemuMutex hspt_sites_lock;
/* Bumped when hspt_softmmu_tbs grows, to drop per-thread caches. */
static unsigned hspt_sites_gen;

void hspt_sites_init(void)
{
    qemu_mutex_init(&hspt_sites_lock);
    hspt_site_misses = g_hash_table_new(g_int64_hash, g_int64_equal);
    hspt_softmmu_tbs = g_hash_table_new_full(g_int64_hash, g_int64_equal,
                                             g_free, NULL);
}

/*
 * A redirected access of TB could not be given a mapping; LASTING if it
 * will not get one soon either (a hot page), so that counting is moot.
 * Called from the slow path with no lock held; invalidating the running
 * TB is safe, as for self-modifying code: it runs to its end and is not
 * entered again.
 */
void hspt_site_miss(const TranslationBlock *tb, bool lasting)
{
    int64_t key = tb->page_addr[0];
    gpointer n;

    if (key == -1) {
        return;
    }
    qemu_mutex_lock(&hspt_sites_lock);
    n = g_hash_table_lookup(hspt_site_misses, &key);
    if (!n && !lasting) {
        int64_t *k = g_new(int64_t, 1);

        *k = key;
        g_hash_table_insert(hspt_site_misses, k, GUINT_TO_POINTER(1));
    } else if (!lasting && GPOINTER_TO_UINT(n) + 1 < HSPT_SITE_MISS_LIMIT) {
        /* insert, not replace: keeps the stored key, not &key */
        g_hash_table_insert(hspt_site_misses, &key,
                            GUINT_TO_POINTER(GPOINTER_TO_UINT(n) + 1));
    } else {
        /*
         * Also when the key is already in the set: TBs for the same code
         * with other CPU flags were translated before and fault alike.
         */
        if (!g_hash_table_contains(hspt_softmmu_tbs, &key)) {
            trace_hspt_site_softmmu(key);
            g_hash_table_add(hspt_softmmu_tbs, g_memdup2(&key, sizeof(key)));
            qatomic_inc(&hspt_sites_gen);
        }
        qatomic_inc(&hspt_stats.softmmu_tbs);
        qemu_mutex_unlock(&hspt_sites_lock);
        tb_phys_invalidate((TranslationBlock *)tb, -1);
        return;
    }
    qemu_mutex_unlock(&hspt_sites_lock);
}

bool hspt_tb_softmmu_only(const TranslationBlock *tb)
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
        qemu_mutex_lock(&hspt_sites_lock);
        cached = g_hash_table_contains(hspt_softmmu_tbs, &key);
        qemu_mutex_unlock(&hspt_sites_lock);
        cached_key = key;
        cached_gen = gen;
    }
    return cached;
}
