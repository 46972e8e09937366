/*
 * qemu-hspt: host shadow page tables for TCG guest memory accesses
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_TCG_HSPT_H
#define ACCEL_TCG_HSPT_H

#include "qom/object.h"

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

/* User-visible configuration (-accel tcg,hspt=...). */
typedef struct HsptConfig {
    bool enabled;       /* hspt=on: the finished feature, not there yet */
    bool preview;       /* x-hspt-preview=on: the incomplete core */
} HsptConfig;

extern HsptConfig hspt_config;

bool hspt_check_environment(const HsptEnvironment *env, Error **errp);

/* Hooks called from accel/tcg/tcg-all.c. */
void hspt_accel_class_init(ObjectClass *oc);
int hspt_init_machine(MachineState *ms, Error **errp);

/*
 * Shadow regions. Each vCPU owns one reservation; the region ("slot") of
 * mmu_idx k starts HSPT_SLOT_SIZE * slot(k) bytes into it, and host
 * address = slot base + zero-extended 32-bit guest VA. The 4 GiB after
 * each region's 4 GiB stay PROT_NONE and catch accesses that wrap past
 * 0xffffffff. Generated code reaches the reservation through %gs.
 */
#define HSPT_SLOT_SHIFT 33
#define HSPT_SLOT_SIZE  (1ull << HSPT_SLOT_SHIFT)
#define HSPT_MAX_SLOTS  4

/* True once hspt=on has been validated; constant for the process. */
extern bool hspt_enabled;
/* Slot of each core mmu_idx, or -1 when that index stays on softmmu. */
extern int8_t hspt_slot_of_idx[16];

static inline bool hspt_idx_active(int mmu_idx)
{
    return hspt_enabled && hspt_slot_of_idx[mmu_idx] >= 0;
}

typedef struct CPUState CPUState;

/* vCPU lifetime (tlb_init/tlb_destroy) and thread entry (cpu_exec). */
void hspt_cpu_init(CPUState *cpu);
void hspt_cpu_destroy(CPUState *cpu);
void hspt_cpu_exec_enter(CPUState *cpu);

/*
 * Shadow maintenance, all called with the vCPU's tlb_c.lock held so that
 * the owner's fills and another thread's write-protects serialise.
 */
void hspt_map_page_locked(CPUState *cpu, int mmu_idx, uint64_t page,
                          void *host, bool writable);
void hspt_unmap_page_locked(CPUState *cpu, int mmu_idx, uint64_t page);
void hspt_flush_idx_locked(CPUState *cpu, int mmu_idx);
void hspt_write_protect_locked(CPUState *cpu, int mmu_idx, uint64_t page);

/* Code generation side (tcg/tcg-hspt.c.inc). */
uintptr_t hspt_tcg_find_stub(uintptr_t host_pc);

#endif
