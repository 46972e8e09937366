/*
 * qemu-hspt: accelerator options and machine init
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/main-loop.h"
#include "qom/object.h"
#include "hw/boards.h"
#include "exec/target_page.h"
#include "system/cpu-timers.h"
#include "system/hostmem.h"
#include "exec/ramblock.h"
#include "exec/ramlist.h"
#include "qemu/error-report.h"
#include "qemu/cutils.h"
#include "hspt.h"
#include "hspt-internal.h"

HsptConfig hspt_config = {
    .organisation = HSPT_SPT_GROUP,
    .groups = HSPT_DEFAULT_GROUPS,
    .window = HSPT_DEFAULT_WINDOW,
    .nursery_us = HSPT_DEFAULT_NURSERY_US,
};

static const char *const hspt_organisation_names[] = {
    [HSPT_SPT_SHARED] = "shared",
    [HSPT_SPT_GROUP] = "group",
    [HSPT_SPT_PRIVATE] = "private",
};

/*
 * The machine's default RAM backend made by -mem-path: a file backend under
 * the id reserved for it. No option makes that one shared.
 */
static bool hspt_backend_from_mem_path(Object *backend)
{
    const char *id = current_machine ?
        MACHINE_GET_CLASS(current_machine)->default_ram_id : NULL;

    return id && object_dynamic_cast(backend, TYPE_MEMORY_BACKEND_FILE) &&
           !strcmp(object_get_canonical_path_component(backend), id);
}

/*
 * Guest RAM that no shadow page can map stays on softmmu, and the direct
 * path pays a signal for each first touch of a page there before its
 * code moves to softmmu: say so, once per memory backend. ROMs, flash
 * and device memory stay on softmmu silently.
 */
static void hspt_ram_block_added(RAMBlockNotifier *n, void *host,
                                 size_t size, size_t max_size)
{
    ram_addr_t offset;
    RAMBlock *rb = qemu_ram_block_from_host(host, false, &offset);
    Object *backend = rb ? object_dynamic_cast(memory_region_owner(rb->mr),
                                               TYPE_MEMORY_BACKEND) : NULL;
    const char *why = backend ? hspt_ram_block_unmappable(rb) : NULL;

    if (why) {
        warn_report("hspt: memory backend '%s' stays on softmmu: %s",
                    object_get_canonical_path_component(backend), why);
        if (hspt_backend_from_mem_path(backend)) {
            error_printf("-mem-path maps its file private; for shadow pages "
                         "use -object memory-backend-file,id=ID,mem-path=FILE,"
                         "size=SIZE,share=on -machine memory-backend=ID\n");
        }
    }
}

static RAMBlockNotifier hspt_ram_notifier = {
    .ram_block_added = hspt_ram_block_added,
};

/*
 * The machine's RAM cannot be mapped by shadow pages (a share=off or
 * huge-page backend): then the direct path would only cost a signal at
 * each first touch of a page until its code moved to softmmu (441 716
 * signals in four test-size workloads), and the vCPUs had better run
 * softmmu-only code from the start.
 */
bool hspt_guest_ram_unmappable(void)
{
    MachineState *ms = current_machine;

    return ms && ms->ram && ms->ram->ram_block &&
           hspt_ram_block_unmappable(ms->ram->ram_block);
}

static bool hspt_get_enabled(Object *obj, Error **errp)
{
    return hspt_config.enabled;
}

static void hspt_set_enabled(Object *obj, bool value, Error **errp)
{
    hspt_config.enabled = value;
}

const char *hspt_organisation_name(void)
{
    return hspt_organisation_names[hspt_config.organisation];
}

static char *hspt_get_organisation(Object *obj, Error **errp)
{
    return g_strdup(hspt_organisation_name());
}

static void hspt_set_organisation(Object *obj, const char *value,
                                  Error **errp)
{
    for (int i = 0; i < ARRAY_SIZE(hspt_organisation_names); i++) {
        if (!strcmp(value, hspt_organisation_names[i])) {
            hspt_config.organisation = i;
            return;
        }
    }
    error_setg(errp, "Invalid parameter value for 'hspt-spt': '%s'", value);
    error_append_hint(errp, "Valid values: shared, group, private\n");
}

/* An unsigned option with a range: the opaque of its QOM property. */
typedef struct HsptUintOption {
    unsigned *value;
    uint32_t min, max;
} HsptUintOption;

static HsptUintOption hspt_groups_option = {
    &hspt_config.groups, 1, HSPT_PRIVATE_SPACES
};
static HsptUintOption hspt_window_option = {
    &hspt_config.window, 0, HSPT_MAX_WINDOW
};
static HsptUintOption hspt_nursery_option = {
    &hspt_config.nursery_us, 0, HSPT_MAX_NURSERY_US
};

static void hspt_get_uint(Object *obj, Visitor *v, const char *name,
                          void *opaque, Error **errp)
{
    HsptUintOption *option = opaque;
    uint32_t value = *option->value;

    visit_type_uint32(v, name, &value, errp);
}

static void hspt_set_uint(Object *obj, Visitor *v, const char *name,
                          void *opaque, Error **errp)
{
    HsptUintOption *option = opaque;
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (value < option->min || value > option->max) {
        error_setg(errp, "Parameter '%s' expects a value between %u and %u",
                   name, option->min, option->max);
        return;
    }
    *option->value = value;
}

/* Shadow spaces per vCPU for the chosen organisation. */
static unsigned hspt_spaces_per_cpu(void)
{
    switch (hspt_config.organisation) {
    case HSPT_SPT_SHARED:
        return 1;
    case HSPT_SPT_PRIVATE:
        return HSPT_PRIVATE_SPACES;
    default:
        return hspt_config.groups;
    }
}

static void hspt_add_uint_property(ObjectClass *oc, const char *name,
                                   HsptUintOption *option,
                                   const char *description)
{
    object_class_property_add(oc, name, "uint32", hspt_get_uint,
                              hspt_set_uint, NULL, option);
    object_class_property_set_description(oc, name, description);
}

void hspt_accel_class_init(ObjectClass *oc)
{
    object_class_property_add_bool(oc, "hspt", hspt_get_enabled,
                                   hspt_set_enabled);
    object_class_property_set_description(oc, "hspt",
        "Translate guest virtual addresses with host shadow page tables "
        "(HSPT) instead of the softmmu TLB (x86-64 hosts, -M virt)");
    object_class_property_add_str(oc, "hspt-spt", hspt_get_organisation,
                                  hspt_set_organisation);
    object_class_property_set_description(oc, "hspt-spt",
        "How guest contexts (ASID, DACR, TTBCR) share shadow spaces: "
        "shared (one per vCPU, flushed on every switch), group (hspt-groups "
        "spaces, least recently used reassigned; default) or private (one "
        "per context, up to 256)");
    hspt_add_uint_property(oc, "hspt-groups", &hspt_groups_option,
        "Shadow spaces per vCPU with hspt-spt=group (1-256, default 8)");
    hspt_add_uint_property(oc, "hspt-window", &hspt_window_option,
        "Prefill window: kernel-view pages of the previous space mapped "
        "into a fresh space at a context switch (0-1024, default 256, "
        "0: no prefill)");
    hspt_add_uint_property(oc, "hspt-nursery", &hspt_nursery_option,
        "Microseconds that a new guest context runs on softmmu-only code "
        "before it gets a shadow space (0-1000000, default 0: at once; "
        "2000 suits LPAE guests that fork a lot)");
}

/*
 * With dump-guest-core=off QEMU keeps guest RAM out of core dumps
 * (MADV_DONTDUMP on its mapping), but every shadow page maps guest RAM
 * again, as shared memory of an unlinked file, which dumps include by
 * default (coredump_filter bit 1, see core(5)). Guest RAM is the only
 * such memory QEMU has here, so leave that class out of this process's
 * dumps.
 */
#define HSPT_COREDUMP_ANON_SHARED (1u << 1)

static void hspt_keep_shadow_out_of_dumps(MachineState *ms)
{
    const char *path = "/proc/self/coredump_filter";
    g_autofree char *text = NULL;
    g_autofree char *value = NULL;
    g_autoptr(GError) err = NULL;
    uint64_t filter;
    int fd;

    if (ms->dump_guest_core) {
        return;
    }
    if (!g_file_get_contents(path, &text, NULL, &err) ||
        qemu_strtou64(g_strstrip(text), NULL, 16, &filter) < 0) {
        warn_report("hspt: cannot read %s, so shadow pages of guest RAM "
                    "may appear in core dumps despite dump-guest-core=off%s%s",
                    path, err ? ": " : "", err ? err->message : "");
        return;
    }
    /* The kernel reads it in C notation: decimal unless 0x. */
    value = g_strdup_printf("0x%" PRIx64,
                            filter & ~(uint64_t)HSPT_COREDUMP_ANON_SHARED);
    /* Not g_file_set_contents(): it writes a new file and renames it. */
    fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, value, strlen(value)) != (ssize_t)strlen(value)) {
        warn_report("hspt: cannot write %s, so shadow pages of guest RAM "
                    "may appear in core dumps despite dump-guest-core=off: "
                    "%s", path, strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
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
        .max_cpus = ms->smp.max_cpus,
    };

    if (!hspt_config.enabled) {
        return 0;
    }
    if (!hspt_check_environment(&env, errp)) {
        return -EINVAL;
    }
    /*
     * Shadow pages map the guest-RAM file: make anonymous RAM backends
     * created from now on (the default one too) a shared memfd, which
     * nothing else can see. File backends keep share=off unless told
     * otherwise: shared, the guest's writes would reach the user's file.
     * An explicit share=off wins; that RAM then stays on softmmu.
     */
    object_register_sugar_prop(TYPE_MEMORY_BACKEND_RAM, "share", "on", false);
    hspt_keep_shadow_out_of_dumps(ms);
    ram_block_notifier_add(&hspt_ram_notifier);
    if (!hspt_region_init(ms->smp.max_cpus, HSPT_SHADOW_IDX_MASK,
                           hspt_spaces_per_cpu(), errp)) {
        return -EINVAL;
    }
    /*
     * Every shadow miss is a SIGSEGV, and the host kernel wakes the main
     * loop's signalfd for each one (forkstorm: 14 000 extra context
     * switches); a sigwait() thread is woken only by its own signals.
     */
    qemu_signal_use_sigwait_thread();
    return 0;
}
