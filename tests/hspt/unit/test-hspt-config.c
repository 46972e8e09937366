/*
 * Unit tests for hspt_check_environment(): which hosts and machines
 * -accel tcg,hspt=on accepts, and what it says when it refuses.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hspt.h"

static const HsptEnvironment virt_on_x86_64 = {
    .machine = "virt",
    .host_x86_64 = true,
    .target_page_bits = 12,
    .host_page_bits = 12,
    .max_cpus = 1,
};

static void check_refused(const HsptEnvironment *env, const char *msg)
{
    Error *err = NULL;

    g_assert_false(hspt_check_environment(env, &err));
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static void test_virt_accepted(void)
{
    Error *err = NULL;

    g_assert_true(hspt_check_environment(&virt_on_x86_64, &err));
    g_assert_null(err);
}

static void test_non_x86_64_host(void)
{
    HsptEnvironment env = virt_on_x86_64;

    env.host_x86_64 = false;
    check_refused(&env, "hspt=on needs an x86-64 host");
}

static void test_small_target_pages(void)
{
    HsptEnvironment env = virt_on_x86_64;

    env.machine = "raspi2b";
    env.target_page_bits = 10;
    check_refused(&env, "hspt=on needs guest pages of at least 4 KiB, "
                  "but machine 'raspi2b' uses 1 KiB pages");
}

static void test_large_host_pages(void)
{
    HsptEnvironment env = virt_on_x86_64;

    env.host_page_bits = 14;
    check_refused(&env, "hspt=on needs guest pages of at least 16 KiB, "
                  "but machine 'virt' uses 4 KiB pages");
}

static void test_icount(void)
{
    HsptEnvironment env = virt_on_x86_64;

    env.icount = true;
    check_refused(&env, "hspt=on cannot be combined with -icount");
}

/* MTTCG: every vCPU gets its own spaces. */
static void test_smp_accepted(void)
{
    HsptEnvironment env = virt_on_x86_64;
    Error *err = NULL;

    env.max_cpus = 4;
    g_assert_true(hspt_check_environment(&env, &err));
    g_assert_null(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hspt/config/virt-accepted", test_virt_accepted);
    g_test_add_func("/hspt/config/non-x86-64-host", test_non_x86_64_host);
    g_test_add_func("/hspt/config/small-target-pages",
                    test_small_target_pages);
    g_test_add_func("/hspt/config/large-host-pages", test_large_host_pages);
    g_test_add_func("/hspt/config/icount", test_icount);
    g_test_add_func("/hspt/config/smp-accepted", test_smp_accepted);
    return g_test_run();
}
