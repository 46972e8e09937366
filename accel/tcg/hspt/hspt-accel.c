/*
 * qemu-hspt: accelerator options and machine init
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qom/object.h"
#include "hw/boards.h"
#include "exec/target_page.h"
#include "system/cpu-timers.h"
#include "hspt.h"

HsptConfig hspt_config;

static bool hspt_get_enabled(Object *obj, Error **errp)
{
    return hspt_config.enabled;
}

static void hspt_set_enabled(Object *obj, bool value, Error **errp)
{
    hspt_config.enabled = value;
}

void hspt_accel_class_init(ObjectClass *oc)
{
    object_class_property_add_bool(oc, "hspt", hspt_get_enabled,
                                   hspt_set_enabled);
    object_class_property_set_description(oc, "hspt",
        "Translate guest virtual addresses with host shadow page tables "
        "(HSPT) instead of the softmmu TLB");
}

int hspt_init_machine(MachineState *ms, Error **errp)
{
    HsptEnvironment env = {
        .machine = MACHINE_GET_CLASS(ms)->name,
#ifdef __x86_64__
        .host_x86_64 = true,
#endif
        .target_page_bits = qemu_target_page_bits(),
        .host_page_bits = ctz64(qemu_real_host_page_size()),
        .icount = icount_enabled(),
    };

    if (!hspt_config.enabled) {
        return 0;
    }
    if (!hspt_check_environment(&env, errp)) {
        return -EINVAL;
    }
    error_setg(errp, "hspt=on is not implemented yet in this build");
    return -ENOSYS;
}
