/*
 * qemu-hspt: "info hspt" and x-query-hspt
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/module.h"
#include "qapi/type-helpers.h"
#include "qapi/qapi-commands-machine.h"
#include "monitor/monitor.h"
#include "hspt.h"

/*
 * Not an error when HSPT is off (or the accelerator is not TCG): "off"
 * is the answer, and QEMU's generic QMP test calls every query.
 */
HumanReadableText *qmp_x_query_hspt(Error **errp)
{
    g_autoptr(GString) buf = g_string_new("");

    if (hspt_enabled) {
        hspt_format_info(buf);
    } else {
        g_string_append(buf, "HSPT off (enable it with -accel tcg,hspt=on)\n");
    }
    return human_readable_text_from_str(buf);
}

static void hspt_monitor_register(void)
{
    monitor_register_hmp_info_hrt("hspt", qmp_x_query_hspt);
}

type_init(hspt_monitor_register);
