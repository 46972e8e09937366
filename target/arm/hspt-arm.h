/*
 * qemu-hspt: hooks of the Arm target into HSPT
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_ARM_HSPT_ARM_H
#define TARGET_ARM_HSPT_ARM_H

#ifndef CONFIG_USER_ONLY
#include "system/tcg.h"
#include "accel/tcg/hspt/hspt.h"

/*
 * Guest contexts are tracked only in the non-secure PL1&0 regime without
 * EL2/EL3: there the registers HSPT keys on are the ones the page-table
 * walk uses.
 */
static inline bool arm_hspt_context_tracked(CPUARMState *env)
{
    return tcg_enabled() && hspt_enabled &&
           !arm_feature(env, ARM_FEATURE_EL3) &&
           !arm_feature(env, ARM_FEATURE_EL2) &&
           !arm_feature(env, ARM_FEATURE_PMSA) &&
           !arm_feature(env, ARM_FEATURE_AARCH64);
}

/* Before the TLB flush of an AArch32 TLBIASID with register VALUE. */
static inline void arm_hspt_flush_asid(CPUARMState *env, uint64_t value)
{
    if (arm_hspt_context_tracked(env)) {
        hspt_flush_asid_prepare(env_cpu(env), value & 0xff);
    }
}

/*
 * The guest's TLBIALLIS (ASID < 0) or TLBIASIDIS: true if HSPT made the
 * flushes of all vCPUs, false if the caller makes them as without HSPT.
 */
static inline bool arm_hspt_flush_all_cpus_synced(CPUARMState *env, int asid)
{
    if (!tcg_enabled() || !hspt_enabled ||
        (asid >= 0 && !arm_hspt_context_tracked(env))) {
        return false;
    }
    hspt_tlb_flush_guest_all_cpus_synced(env_cpu(env), asid);
    return true;
}

/*
 * The guest's TLBIMVA (IS: its TLBIMVAIS) with register VALUE (VA and
 * ASID): true if HSPT made the flush, false if the caller makes it as
 * without HSPT.
 */
static inline bool arm_hspt_flush_page_asid(CPUARMState *env, uint64_t value,
                                            bool is)
{
    if (!arm_hspt_context_tracked(env)) {
        return false;
    }
    if (is) {
        hspt_tlb_flush_page_asid_all_cpus_synced(env_cpu(env), value,
                                                 value & 0xff);
    } else {
        hspt_tlb_flush_page_asid(env_cpu(env), value, value & 0xff);
    }
    return true;
}

/* Before the TLB flush of the guest's TLBIALL. */
static inline void arm_hspt_flush_all(CPUARMState *env)
{
    if (tcg_enabled() && hspt_enabled) {
        hspt_flush_all_prepare(env_cpu(env));
    }
}

/* After an exception return has set the new mode (fault-ahead). */
static inline void arm_hspt_exception_return(CPUARMState *env)
{
    if (tcg_enabled() && hspt_enabled) {
        hspt_exception_return(env_cpu(env),
                              arm_to_core_mmu_idx(arm_mmu_idx(env)));
    }
}
#else
static inline bool arm_hspt_flush_all_cpus_synced(CPUARMState *env, int asid)
{
    return false;
}

static inline void arm_hspt_flush_asid(CPUARMState *env, uint64_t value)
{
}

static inline bool arm_hspt_flush_page_asid(CPUARMState *env, uint64_t value,
                                            bool is)
{
    return false;
}

static inline void arm_hspt_flush_all(CPUARMState *env)
{
}

static inline void arm_hspt_exception_return(CPUARMState *env)
{
}
#endif

#endif
