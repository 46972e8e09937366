/*
 * qemu-hspt: which hosts and machines HSPT can run on
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hspt.h"

bool hspt_check_environment(const HsptEnvironment *env, Error **errp)
{
    if (!env->host_x86_64) {
        error_setg(errp, "hspt=on needs an x86-64 host");
        return false;
    }
    /*
     * A shadow page is one host page; it can only stand for a whole guest
     * page. ARM boards other than virt use 1 KiB target pages.
     */
    if (env->target_page_bits < env->host_page_bits) {
        error_setg(errp, "hspt=on needs guest pages of at least %u KiB, "
                   "but machine '%s' uses %u KiB pages",
                   (1u << env->host_page_bits) / 1024, env->machine,
                   (1u << env->target_page_bits) / 1024);
        error_append_hint(errp, "Use -M virt, or leave hspt off.\n");
        return false;
    }
    /* icount must count every access in the slow path. */
    if (env->icount) {
        error_setg(errp, "hspt=on cannot be combined with -icount");
        return false;
    }
    return true;
}
