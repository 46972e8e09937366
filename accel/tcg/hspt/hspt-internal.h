/*
 * qemu-hspt: state shared by the files of accel/tcg/hspt
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_TCG_HSPT_INTERNAL_H
#define ACCEL_TCG_HSPT_INTERNAL_H

#include "hspt.h"

typedef struct HsptSlot {
    unsigned long *mapped;      /* guest page has a file mapping */
    unsigned long *writable;    /* ... and it is PROT_WRITE */
    uint32_t n_mapped;
} HsptSlot;

typedef struct HsptCPU {
    uint8_t *base;              /* the reservation; %gs base of its thread */
    size_t size;
    HsptSlot slot[HSPT_MAX_SLOTS];
} HsptCPU;

/* Process-wide counters (printed at exit with QEMU_HSPT_STATS=1). */
typedef struct HsptStats {
    uint64_t fills;
    uint64_t signals;
    uint64_t page_flushes;
    uint64_t region_flushes;
    uint64_t write_protects;
    uint64_t evictions;
    uint64_t unmappable;
    uint64_t mmap_errors;
    uint64_t mapped_pages;
} HsptStats;

extern HsptStats hspt_stats;

bool hspt_region_init(unsigned max_cpus, uint16_t idx_mask, Error **errp);

#endif
