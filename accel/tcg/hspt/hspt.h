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
} HsptEnvironment;

/* User-visible configuration (-accel tcg,hspt=...). */
typedef struct HsptConfig {
    bool enabled;
} HsptConfig;

extern HsptConfig hspt_config;

bool hspt_check_environment(const HsptEnvironment *env, Error **errp);

/* Hooks called from accel/tcg/tcg-all.c. */
void hspt_accel_class_init(ObjectClass *oc);
int hspt_init_machine(MachineState *ms, Error **errp);

#endif
