/*
 * qemu-hspt bare-metal test: every TLB invalidation the architecture
 * requires is honoured, per ASID, for global and non-global pages, in
 * every shadowed view (PL1, PL0 via LDRT/STRT, PL1 with PAN), and as
 * inner-shareable broadcast to the other vCPUs.
 *
 * Runs on -M virt -cpu max -smp 2 to 4, built twice: with short-descriptor page
 * tables and Linux's way of switching contexts with them (TTBR0 to
 * global-only tables, new ASID in CONTEXTIDR, then the new TTBR0), and
 * with -DLPAE long-descriptor tables (ASID and table in one TTBR0 write).
 * Each check changes a page-table
 * entry, issues one TLBI flavour and reads (or writes) through the
 * changed translation, possibly after switching to the other context or
 * on the other vCPUs: the access must see the new translation. Entries the
 * architecture merely permits to stay (TLBIASID on a global page, say)
 * are not checked either way.
 *
 * Prints "FAIL: ..." per failed check and ends with "TLBI OK" or
 * "TLBI FAILED", then powers off through PSCI.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdbool.h>
#include <stdint.h>

#include "bare.h"

#define RAM_BASE        0x40000000u
#define RAM_SECTIONS    16              /* 16 MiB identity mapped */

/* Test windows: per-context pages and global pages. */
#define USER_VA         0x10000000u     /* L2 table per ASID, nG */
#define GLOBAL_VA       0x10200000u     /* one last-level table, global */
#define WINDOW_MASK     0xffe00000u     /* 2 MiB: one LPAE level-3 table */
#define USER_DOMAIN     1
/* A section (short) or level-2 block (LPAE) of ASID 1, nG, PL0 RW */
#define BLOCK_VA        0x20000000u
#define BLOCK_PA_A      (RAM_BASE + 0x01000000u)        /* past the 16 MiB */
#define BLOCK_PA_B      (RAM_BASE + 0x01400000u)

#define CPSR_PAN        (1u << 22)

#define NPAGES          64
#define NO_VALUE        0xffffffffu

/* Access permissions as short-descriptor AP[2:0] values */
enum { AP_PRIV_RW = 1, AP_USER_RO = 2, AP_ALL_RW = 3, AP_ALL_RO = 7 };

#ifndef LPAE
#define FORMAT          "short descriptors"
/* Short-descriptor formats (ARM DDI 0406C, B3.5). */
#define L1_TABLE        0x1u
#define L1_SECTION      0x2u
#define L1_DOMAIN(d)    ((uint32_t)(d) << 5)
#define SECT_AP_PRIV    (1u << 10)     /* PL1 RW, no PL0 access */
#define SECT_CB         0xcu
#define SECT_XN         0x10u
#define PTE_SMALL       0x2u
#define PTE_CB          0xcu
#define PTE_NG          (1u << 11)
#define SECT_AP_ALL_RW  (3u << 10)
#define SECT_NG         (1u << 17)

static inline uint32_t pte_ap(unsigned ap)
{
    return ((ap & 3) << 4) | ((ap >> 2) << 9);
}

static uint32_t l1[3][4096] __attribute__((aligned(16384)));  /* [0]: global */
/* Last level of the test windows: per ASID, and the global one. */
typedef uint32_t pte_t;
#define PTES            256
#define PTE_PAGE_ATTRS  (PTE_CB | PTE_SMALL)
static pte_t pt_user[3][PTES] __attribute__((aligned(1024)));
static pte_t pt_global[PTES] __attribute__((aligned(1024)));
#else
#define FORMAT          "long descriptors (LPAE)"
/* Long-descriptor formats (ARM DDI 0406C, B3.6). */
#define D_TABLE         0x3ull
#define D_BLOCK         0x1ull
#define D_PAGE          0x3ull
#define D_AF            (1ull << 10)
#define D_SH_INNER      (3ull << 8)
#define D_NG            (1ull << 11)
#define D_ATTR_NORMAL   (0ull << 2)     /* MAIR0 byte 0 */
#define D_ATTR_DEVICE   (1ull << 2)     /* MAIR0 byte 1 */
#define D_XN            (3ull << 53)    /* XN and PXN */
#define MAIR0_VALUE     0x000000ffu     /* normal write-back; device-nGnRnE */
#define TTBCR_EAE       (1u << 31)

/* AP[2:1] of our AP[2:0] values; LPAE has no "PL1 RW, PL0 RO": RO. */
static inline uint64_t pte_ap(unsigned ap)
{
    switch (ap) {
    case AP_PRIV_RW:
        return 0;
    case AP_ALL_RW:
        return 1ull << 6;
    default:
        return 3ull << 6;
    }
}

/* Per context: level 1 (4 x 1 GiB) and level 2 of the first GiB. */
static uint64_t l1[3][4] __attribute__((aligned(32)));
static uint64_t l2_low[3][512] __attribute__((aligned(4096)));
static uint64_t l2_ram[512] __attribute__((aligned(4096)));    /* shared */
/* Level 3 of the test windows: per ASID, and the global one. */
typedef uint64_t pte_t;
#define PTES            512
#define PTE_NG          D_NG
#define PTE_PAGE_ATTRS  (D_AF | D_SH_INNER | D_ATTR_NORMAL | D_PAGE)
static pte_t pt_user[3][PTES] __attribute__((aligned(4096)));
static pte_t pt_global[PTES] __attribute__((aligned(4096)));
#endif
static uint32_t pages[NPAGES][1024] __attribute__((aligned(4096)));

#define MAX_CPUS        4

static volatile uint32_t aborts[MAX_CPUS];
static volatile uint32_t last_dfsr[MAX_CPUS], last_dfar[MAX_CPUS];
static unsigned checks, failures;
static bool have_pan;

/* A mailbox per secondary vCPU */
enum { CMD_NONE, CMD_SWITCH, CMD_READ, CMD_READ_USER };
typedef struct Mailbox {
    volatile uint32_t seq, done, cmd, arg, result;
    volatile uint32_t up;
} Mailbox;
static Mailbox mailbox[MAX_CPUS];
static unsigned ncpus = 1;      /* vCPUs 0 .. ncpus - 1 run */

/* --- CPU operations ------------------------------------------------------ */

static inline uint32_t cpu_index(void)
{
    uint32_t mpidr;

    asm volatile("mrc p15, 0, %0, c0, c0, 5" : "=r"(mpidr));
    return mpidr & 0xff;
}

static inline void dsb(void)
{
    asm volatile("dsb" ::: "memory");
}

/*
 * In a wait loop: with thread=single, YIELD hands the host thread to the
 * next vCPU at once instead of at the end of a 100 ms time slice (a
 * no-op with MTTCG).
 */
static inline void spin_wait(void)
{
    asm volatile("yield\n\tdsb" ::: "memory");
}

static inline void isb(void)
{
    asm volatile("isb" ::: "memory");
}

#define CP15_WRITE(crn, op1, crm, op2, v) \
    asm volatile("mcr p15, " #op1 ", %0, " #crn ", " #crm ", " #op2 \
                 :: "r"(v) : "memory")

/* After a page-table store, before the TLBI (as Linux does). */
static void tlbi_begin(void)
{
    dsb();
}

static void tlbi_end(void)
{
    dsb();
    isb();
}

/* In the order of their op2 encodings, local then inner shareable. */
enum tlbi {
    TLBIALL, TLBIMVA, TLBIASID, TLBIMVAA,
    TLBIALLIS, TLBIMVAIS, TLBIASIDIS, TLBIMVAAIS,
};

static const char *const tlbi_name[] = {
    "TLBIALL", "TLBIMVA", "TLBIASID", "TLBIMVAA",
    "TLBIALLIS", "TLBIMVAIS", "TLBIASIDIS", "TLBIMVAAIS",
};

/*
 * Invalidate VA of ASID with flavour OP. The low two bits of OP say what
 * the register holds (see enum tlbi); MCR needs constant encodings.
 */
static void tlbi(enum tlbi op, uint32_t va, uint32_t asid)
{
    const uint32_t arg[] = { 0, (va & ~0xfffu) | asid, asid, va & ~0xfffu };
    uint32_t v = arg[op & 3];

    tlbi_begin();
    switch (op) {
    case TLBIALL:    CP15_WRITE(c8, 0, c7, 0, v); break;
    case TLBIMVA:    CP15_WRITE(c8, 0, c7, 1, v); break;
    case TLBIASID:   CP15_WRITE(c8, 0, c7, 2, v); break;
    case TLBIMVAA:   CP15_WRITE(c8, 0, c7, 3, v); break;
    case TLBIALLIS:  CP15_WRITE(c8, 0, c3, 0, v); break;
    case TLBIMVAIS:  CP15_WRITE(c8, 0, c3, 1, v); break;
    case TLBIASIDIS: CP15_WRITE(c8, 0, c3, 2, v); break;
    case TLBIMVAAIS: CP15_WRITE(c8, 0, c3, 3, v); break;
    }
    tlbi_end();
}

#ifndef LPAE
static void set_dacr(uint32_t dacr)
{
    CP15_WRITE(c3, 0, c0, 0, dacr);
    isb();
}

static uint32_t dacr_with(unsigned domain, unsigned type)
{
    return (0x55555555u & ~(3u << (2 * domain))) | (type << (2 * domain));
}

/* Linux's switch_mm with short descriptors (cpu_v7_switch_mm). */
static void switch_to(uint32_t asid)
{
    CP15_WRITE(c2, 0, c0, 0, (uint32_t)(uintptr_t)l1[0]);
    isb();
    CP15_WRITE(c13, 0, c0, 1, asid);
    isb();
    CP15_WRITE(c2, 0, c0, 0, (uint32_t)(uintptr_t)l1[asid]);
    isb();
}
#else
/* Linux's cpu_v7_switch_mm with LPAE: table and ASID in one write. */
static void switch_to(uint32_t asid)
{
    uint32_t lo = (uint32_t)(uintptr_t)l1[asid], hi = asid << 16;

    asm volatile("mcrr p15, 0, %0, %1, c2" :: "r"(lo), "r"(hi) : "memory");
    isb();
}
#endif

/* CPSR.PAN by MSR (QEMU has no A32 SETPAN). */
static void set_pan(bool on)
{
    uint32_t cpsr;

    asm volatile("mrs %0, cpsr" : "=r"(cpsr));
    cpsr = on ? cpsr | CPSR_PAN : cpsr & ~CPSR_PAN;
    asm volatile("msr cpsr_fsxc, %0\n\tisb" :: "r"(cpsr) : "memory");
}

/* --- accesses: NO_VALUE and an abort when the access faults ------------- */

static uint32_t read_priv(uint32_t va)
{
    uint32_t v;

    asm volatile("mvn %0, #0\n\tldr %0, [%1]" : "=&r"(v) : "r"(va) : "memory");
    return v;
}

static uint32_t read_user(uint32_t va)
{
    uint32_t v;

    asm volatile("mvn %0, #0\n\tldrt %0, [%1]" : "=&r"(v) : "r"(va) : "memory");
    return v;
}

static uint32_t read_pan(uint32_t va)
{
    uint32_t v;

    set_pan(true);
    v = read_priv(va);
    set_pan(false);
    return v;
}

/* True if the store faulted. */
static bool write_priv(uint32_t va, uint32_t v)
{
    uint32_t before = aborts[cpu_index()];

    asm volatile("str %0, [%1]" :: "r"(v), "r"(va) : "memory");
    return aborts[cpu_index()] != before;
}

static bool write_user(uint32_t va, uint32_t v)
{
    uint32_t before = aborts[cpu_index()];

    asm volatile("strt %0, [%1]" :: "r"(v), "r"(va) : "memory");
    return aborts[cpu_index()] != before;
}

void data_abort(uint32_t dfsr, uint32_t dfar);
void data_abort(uint32_t dfsr, uint32_t dfar)
{
    uint32_t cpu = cpu_index();

    last_dfsr[cpu] = dfsr;
    last_dfar[cpu] = dfar;
    aborts[cpu]++;
}

void unexpected_exception(uint32_t lr, uint32_t cpsr);
void unexpected_exception(uint32_t lr, uint32_t cpsr)
{
    put_failure("unexpected exception", "lr", lr, "cpsr", cpsr);
    put_str("TLBI FAILED\n");
    power_off();
}

/* --- page tables --------------------------------------------------------- */

static uint32_t marker(unsigned page)
{
    return 0xa5000000u | page;
}

static uint32_t page_pa(unsigned page)
{
    return (uint32_t)(uintptr_t)pages[page];
}

static pte_t *pte_of(uint32_t asid, uint32_t va)
{
    if ((va & WINDOW_MASK) == GLOBAL_VA) {
        return &pt_global[(va >> 12) % PTES];
    }
    return &pt_user[asid][(va >> 12) % PTES];
}

/* Map VA of ASID (global pages: of every ASID) to test page PAGE. */
static void map(uint32_t asid, uint32_t va, unsigned page, unsigned ap)
{
    pte_t ng = (va & WINDOW_MASK) == GLOBAL_VA ? 0 : PTE_NG;

    *pte_of(asid, va) = page_pa(page) | pte_ap(ap) | ng | PTE_PAGE_ATTRS;
}

static void unmap(uint32_t asid, uint32_t va)
{
    *pte_of(asid, va) = 0;
}

#ifndef LPAE
static inline uint32_t sect_ap(unsigned ap)
{
    return ((ap & 3) << 10) | ((ap >> 2) << 15);
}

/* VA of ASID as a section at PA with AP, or unmapped if PA is 0. */
static void map_block_ap(uint32_t asid, uint32_t va, uint32_t pa,
                         unsigned ap)
{
    l1[asid][va >> 20] = pa ? pa | sect_ap(ap) | SECT_NG |
                              L1_DOMAIN(USER_DOMAIN) | SECT_CB |
                              L1_SECTION : 0;
}

static void format_tables_init(void)
{
    for (unsigned t = 0; t < 3; t++) {
        for (unsigned s = 0; s < RAM_SECTIONS; s++) {
            uint32_t base = RAM_BASE + (s << 20);

            l1[t][base >> 20] = base | SECT_AP_PRIV | SECT_CB | L1_SECTION;
        }
        l1[t][0x090] = 0x09000000u | SECT_AP_PRIV | SECT_XN | L1_SECTION;
        if (t) {
            l1[t][USER_VA >> 20] = (uint32_t)(uintptr_t)pt_user[t] |
                                   L1_DOMAIN(USER_DOMAIN) | L1_TABLE;
            l1[t][GLOBAL_VA >> 20] = (uint32_t)(uintptr_t)pt_global |
                                     L1_DOMAIN(USER_DOMAIN) | L1_TABLE;
        }
    }
}

static void format_regs_init(void)
{
    CP15_WRITE(c2, 0, c0, 2, 0);                        /* TTBCR: TTBR0 only */
    set_dacr(0x55555555u);                              /* all client */
}

#else
/*
 * VA of ASID as a level-2 block at PA with AP, or unmapped if PA is 0. The
 * second GiB (RAM) has one level-2 table for all contexts.
 */
static void map_block_ap(uint32_t asid, uint32_t va, uint32_t pa,
                         unsigned ap)
{
    uint64_t *l2 = va < 0x40000000u ? l2_low[asid] : l2_ram;

    l2[(va >> 21) & 0x1ff] = pa ? pa | D_AF | D_SH_INNER | D_ATTR_NORMAL |
                                  D_NG | pte_ap(ap) | D_BLOCK : 0;
}

static void format_tables_init(void)
{
    for (unsigned b = 0; b < RAM_SECTIONS / 2; b++) {
        uint64_t base = RAM_BASE + (b << 21);

        l2_ram[(base >> 21) & 0x1ff] = base | D_AF | D_SH_INNER |
                                       D_ATTR_NORMAL | D_BLOCK;
    }
    for (unsigned t = 0; t < 3; t++) {
        l1[t][0] = (uint32_t)(uintptr_t)l2_low[t] | D_TABLE;
        l1[t][1] = (uint32_t)(uintptr_t)l2_ram | D_TABLE;
        l2_low[t][0x09000000u >> 21] = 0x09000000u | D_AF | D_ATTR_DEVICE |
                                       D_XN | D_BLOCK;
        if (t) {
            l2_low[t][USER_VA >> 21] = (uint32_t)(uintptr_t)pt_user[t] |
                                       D_TABLE;
            l2_low[t][GLOBAL_VA >> 21] = (uint32_t)(uintptr_t)pt_global |
                                         D_TABLE;
        }
    }
}

static void format_regs_init(void)
{
    CP15_WRITE(c10, 0, c2, 0, MAIR0_VALUE);
    CP15_WRITE(c2, 0, c0, 2, TTBCR_EAE);                /* TTBR0 only */
}
#endif

/* Each test page also holds code returning its number, at this offset. */
#define PAGE_CODE_OFF   0x800u

static void build_tables(void)
{
    format_tables_init();
    for (unsigned p = 0; p < NPAGES; p++) {
        pages[p][0] = marker(p);
        pages[p][PAGE_CODE_OFF / 4] = 0xe3a00000u | p;     /* mov r0, #p */
        pages[p][PAGE_CODE_OFF / 4 + 1] = 0xe12fff1eu;     /* bx lr */
    }
    dsb();
    asm volatile("mcr p15, 0, %0, c7, c5, 0" :: "r"(0));  /* ICIALLU */
    dsb();
    isb();
}

#define SCTLR_M         (1u << 0)
#define SCTLR_SPAN      (1u << 23)

static void sctlr_update(uint32_t set, uint32_t clear)
{
    uint32_t sctlr;

    asm volatile("mrc p15, 0, %0, c1, c0, 0" : "=r"(sctlr));
    CP15_WRITE(c1, 0, c0, 0, (sctlr | set) & ~clear);
    isb();
}

static void mmu_on(void)
{
    format_regs_init();
    switch_to(0);
    CP15_WRITE(c8, 0, c7, 0, 0);                        /* TLBIALL */
    dsb();
    sctlr_update(SCTLR_M | SCTLR_SPAN, 0);
}

static void map_block(uint32_t asid, uint32_t va, uint32_t pa)
{
    map_block_ap(asid, va, pa, AP_ALL_RW);
}

/* --- checks -------------------------------------------------------------- */

static void check(bool ok, const char *what, const char *how, uint32_t got,
                  uint32_t want)
{
    checks++;
    if (!ok) {
        failures++;
        put_str("FAIL: ");
        put_str(what);
        put_str(" after ");
        put_str(how);
        put_str(": got ");
        put_hex(got);
        put_str(", want ");
        put_hex(want);
        put_str("\n");
    }
}

static void check_value(uint32_t got, uint32_t want, const char *what,
                        const char *how)
{
    check(got == want, what, how, got, want);
}

/* Reads of VA through every view that may read it; the shadow fills. */
static void warm(uint32_t va, unsigned ap)
{
    (void)read_priv(va);
    if (ap != AP_PRIV_RW) {
        (void)read_user(va);
    }
    if (have_pan && ap == AP_PRIV_RW) {
        (void)read_pan(va);
    }
}

static void check_reads(uint32_t va, unsigned ap, uint32_t want,
                        const char *how)
{
    check_value(read_priv(va), want, "PL1 read", how);
    if (ap != AP_PRIV_RW) {
        check_value(read_user(va), want, "PL0 read (LDRT)", how);
    }
    if (have_pan && ap == AP_PRIV_RW) {
        check_value(read_pan(va), want, "PL1 read with PAN", how);
    }
}

static unsigned next_page = 1;

static unsigned fresh_page(void)
{
    unsigned p = next_page++;

    if (next_page == NPAGES) {
        next_page = 1;
    }
    return p;
}

/*
 * Run ASID, with its VA newly mapped to a fresh page with AP and cached in
 * every view that may read it; the page.
 */
static unsigned fresh_mapping(uint32_t asid, uint32_t va, unsigned ap)
{
    unsigned page = fresh_page();

    switch_to(asid);
    map(asid, va, page, ap);
    tlbi(TLBIALL, 0, 0);
    warm(va, ap);
    return page;
}

/*
 * Local flavours on the current context: VA of ASID 1 (or a global page)
 * is remapped, the TLBI must make the new page visible.
 */
static void test_local_remap(enum tlbi op, uint32_t va, unsigned ap)
{
    unsigned old = fresh_mapping(1, va, ap), new = fresh_page();

    check_reads(va, ap, marker(old), "the first mapping");
    map(1, va, new, ap);
    tlbi(op, va, 1);
    check_reads(va, ap, marker(new), tlbi_name[op]);
}

/*
 * The other context: VA of ASID 2 is cached while ASID 2 runs, changed and
 * invalidated while ASID 1 runs; back in ASID 2 the new page must show.
 */
static void test_other_context(enum tlbi op, uint32_t va, unsigned ap)
{
    unsigned old = fresh_mapping(2, va, ap), new = fresh_page();

    check_reads(va, ap, marker(old), "the first mapping (ASID 2)");
    switch_to(1);
    warm(va, ap);               /* ASID 1's own mapping of VA, if any */
    map(2, va, new, ap);
    tlbi(op, va, 2);
    switch_to(2);
    check_reads(va, ap, marker(new), tlbi_name[op]);
    switch_to(1);
}

/*
 * VA is mapped by ASID 1 and by ASID 2, to pages of their own; ASID 2's
 * mapping changes and is invalidated while ASID 1 runs (or, with
 * FROM_OWNER, while ASID 2 runs). Each context must then read its own
 * page: ASID 1 the one it had, ASID 2 the new one. A tagged TLB may keep
 * ASID 1's entry through a TLBIMVA of ASID 2, and HSPT keeps its shadow
 * page (info hspt: "pages kept at a TLBIMVA of another ASID").
 */
static void test_same_va_other_asid(enum tlbi op, uint32_t va, unsigned ap,
                                    bool from_owner)
{
    unsigned before = failures;
    unsigned mine = fresh_mapping(1, va, ap);
    unsigned old = fresh_mapping(2, va, ap), new = fresh_page();

    check_reads(va, ap, marker(old), "the first mapping (ASID 2)");
    switch_to(1);
    check_reads(va, ap, marker(mine), "the first mapping (ASID 1)");
    if (from_owner) {
        switch_to(2);
    }
    map(2, va, new, ap);
    tlbi(op, va, 2);
    switch_to(1);
    check_reads(va, ap, marker(mine), "ASID 2's TLBI (ASID 1's page)");
    switch_to(2);
    check_reads(va, ap, marker(new), "ASID 2's TLBI (ASID 2's page)");
    switch_to(1);
    if (failures != before) {
        put_str("  (both ASIDs mapping the VA, ");
        put_str(tlbi_name[op]);
        put_str(from_owner ? " issued in ASID 2)\n" : " issued in ASID 1)\n");
    }
}

/* Call the code of the page VA maps (an indirect branch, as a return is). */
static uint32_t call_page_code(uint32_t va)
{
    uint32_t (*fn)(void) = (uint32_t (*)(void))(uintptr_t)(va +
                                                           PAGE_CODE_OFF);

    return fn();
}

/*
 * Code of the other context: VA of ASID 2 runs the code of one page, and
 * is remapped to another page and invalidated while ASID 1 runs; back in
 * ASID 2 the call must run the new page's code. QEMU finds the TB of an
 * indirect branch by virtual PC in a jump cache, which HSPT keeps per
 * context across switches: it must not outlive such an invalidation.
 */
static void test_other_context_code(enum tlbi op)
{
    const uint32_t va = USER_VA + 0x30000;
    unsigned old = fresh_mapping(2, va, AP_PRIV_RW), new = fresh_page();

    check_value(call_page_code(va), old, "call", "the first mapping (ASID 2)");
    switch_to(1);
    switch_to(2);
    check_value(call_page_code(va), old, "call", "switches and no TLBI");
    switch_to(1);
    map(2, va, new, AP_PRIV_RW);
    tlbi(op, va, 2);
    switch_to(2);
    check_value(call_page_code(va), new, "call", tlbi_name[op]);
    switch_to(1);
}

/*
 * The same in the context that runs: after the TLBI, the jump cache entry
 * for VA (which QEMU clears at a flush, and which a cache that outlived
 * flushes would have to check) must not run the old page's code.
 */
static void test_same_context_code(enum tlbi op)
{
    const uint32_t va = USER_VA + 0x38000;
    unsigned old = fresh_mapping(1, va, AP_PRIV_RW), new = fresh_page();

    check_value(call_page_code(va), old, "call", "the first mapping (ASID 1)");
    check_value(call_page_code(va), old, "call", "no TLBI");
    map(1, va, new, AP_PRIV_RW);
    tlbi(op, va, 1);
    check_value(call_page_code(va), new, "call", tlbi_name[op]);
    tlbi(op, va, 1);
    check_value(call_page_code(va), new, "call", "a second TLBI");
}

/*
 * A global page cached under both ASIDs: invalidated by VA with ASID 1
 * (TLBIMVA matches global entries of any ASID), it must change in both.
 */
static void test_global(enum tlbi op)
{
    uint32_t va = GLOBAL_VA + 0x3000;
    unsigned old = fresh_page(), new = fresh_page();

    map(0, va, old, AP_ALL_RW);
    tlbi(TLBIALL, 0, 0);
    switch_to(1);
    warm(va, AP_ALL_RW);
    switch_to(2);
    warm(va, AP_ALL_RW);
    switch_to(1);
    map(0, va, new, AP_ALL_RW);
    tlbi(op, va, 1);
    check_reads(va, AP_ALL_RW, marker(new), tlbi_name[op]);
    switch_to(2);
    check_reads(va, AP_ALL_RW, marker(new), tlbi_name[op]);
    switch_to(1);
}

static void check_read_faults(uint32_t va, const char *how)
{
    uint32_t cpu = cpu_index(), before = aborts[cpu];
    uint32_t v;

    v = read_priv(va);
    check(v == NO_VALUE && aborts[cpu] == before + 1, "PL1 read fault", how,
          v, NO_VALUE);
    before = aborts[cpu];
    v = read_user(va);
    check(v == NO_VALUE && aborts[cpu] == before + 1, "PL0 read fault", how,
          v, NO_VALUE);
}

/* Unmapped, the page must fault; mapped again, it must read. */
static void test_unmap(enum tlbi op)
{
    uint32_t va = USER_VA + 0x40000;
    unsigned page = fresh_mapping(1, va, AP_ALL_RW);

    unmap(1, va);
    tlbi(op, va, 1);
    check_read_faults(va, tlbi_name[op]);
    map(1, va, page, AP_ALL_RW);
    tlbi(op, va, 1);
    check_reads(va, AP_ALL_RW, marker(page), tlbi_name[op]);
}

/* Write permission taken away: writes must fault, reads must not. */
static void test_write_protect(enum tlbi op)
{
    uint32_t va = USER_VA + 0x50000;
    unsigned page = fresh_page();

    switch_to(1);
    map(1, va, page, AP_ALL_RW);
    tlbi(TLBIALL, 0, 0);
    check(!write_priv(va, marker(page)), "PL1 write", "RW mapping", 1, 0);
    check(!write_user(va, marker(page)), "PL0 write", "RW mapping", 1, 0);

#ifndef LPAE
    map(1, va, page, AP_USER_RO);
    tlbi(op, va, 1);
    check(write_user(va, 0), "PL0 write fault (AP user RO)", tlbi_name[op],
          0, 1);
    check(!write_priv(va, marker(page)), "PL1 write (AP user RO)",
          tlbi_name[op], 1, 0);
#endif

    map(1, va, page, AP_ALL_RO);
    tlbi(op, va, 1);
    check(write_priv(va, 0), "PL1 write fault (AP RO)", tlbi_name[op], 0, 1);
    check_value(read_priv(va), marker(page), "PL1 read (AP RO)",
                tlbi_name[op]);
}

/*
 * A large page is cached whole (the shadow maps a section or block in one
 * go); invalidating another page inside it must drop all of it, since it
 * is one TLB entry. Remap and unmap, invalidating BLOCK_VA + 0x80000 and
 * reading BLOCK_VA + 0x5000.
 */
static uint32_t block_marker(uint32_t pa)
{
    return 0xb1000000u | (pa >> 20);
}

/* Pages of the blocks that test_large_page_by_pages() checks, its code. */
static const uint32_t by_page_offs[] = { 0x6000, 0x7000, 0x8000 };
#define BLOCK_CODE_OFF  0x10000u

/* Where test_large_page_64k()'s page lies in each block, its markers. */
#define LARGE_OFF       0x20000u

static uint32_t large_marker(uint32_t pa, uint32_t off)
{
    return 0xb2000000u | (pa >> 20) << 16 | off;
}

static void block_markers_init(void)
{
    static const uint32_t pa[] = { BLOCK_PA_A, BLOCK_PA_B };

    switch_to(1);
    for (unsigned i = 0; i < 2; i++) {
        map_block(1, BLOCK_VA, pa[i]);
        tlbi(TLBIALL, 0, 0);
        (void)write_priv(BLOCK_VA + 0x5000, block_marker(pa[i]));
        for (uint32_t off = 0; off < 0x10000u; off += 0x1000u) {
            (void)write_priv(BLOCK_VA + LARGE_OFF + off,
                             large_marker(pa[i], off));
        }
        for (unsigned j = 0; j < 3; j++) {
            (void)write_priv(BLOCK_VA + by_page_offs[j],
                             block_marker(pa[i]) ^ by_page_offs[j]);
        }
        /* mov r0, #(i + 1); bx lr */
        (void)write_priv(BLOCK_VA + BLOCK_CODE_OFF, 0xe3a00000u | (i + 1));
        (void)write_priv(BLOCK_VA + BLOCK_CODE_OFF + 4, 0xe12fff1eu);
    }
    asm volatile("mcr p15, 0, %0, c7, c5, 0" :: "r"(0));  /* ICIALLU */
    dsb();
    isb();
}

static void test_large_page(enum tlbi op)
{
    const uint32_t va = BLOCK_VA + 0x5000, other = BLOCK_VA + 0x80000;

    switch_to(1);
    map_block(1, BLOCK_VA, BLOCK_PA_A);
    tlbi(TLBIALL, 0, 0);
    check_reads(va, AP_ALL_RW, block_marker(BLOCK_PA_A), "the first block");
    map_block(1, BLOCK_VA, BLOCK_PA_B);
    tlbi(op, other, 1);
    check_reads(va, AP_ALL_RW, block_marker(BLOCK_PA_B), tlbi_name[op]);
    map_block(1, BLOCK_VA, 0);
    tlbi(op, other, 1);
    check_read_faults(va, tlbi_name[op]);
}

#ifndef LPAE
/*
 * A 64 KiB large page (short descriptors: 16 equal entries of ASID 1's
 * L2 table) is one TLB entry as well: invalidating one of its pages must
 * drop the others. It lies LARGE_OFF into block A or B, whose pages hold
 * large_marker() there (block_markers_init()).
 */
#define LARGE_VA        (USER_VA + 0xc0000u)
#define PTE_LARGE       0x1u

static void map_large(uint32_t va, uint32_t pa)
{
    for (unsigned i = 0; i < 16; i++) {
        pt_user[1][((va >> 12) + i) % PTES] =
            pa ? pa | pte_ap(AP_ALL_RW) | PTE_NG | PTE_CB | PTE_LARGE : 0;
    }
}

static void test_large_page_64k(enum tlbi op)
{
    const uint32_t in = 0x3000u, other = 0xe000u;

    switch_to(1);
    map_large(LARGE_VA, BLOCK_PA_A + LARGE_OFF);
    tlbi(TLBIALL, 0, 0);
    check_reads(LARGE_VA + in, AP_ALL_RW, large_marker(BLOCK_PA_A, in),
                "the first 64 KiB page");
    check_reads(LARGE_VA + other, AP_ALL_RW,
                large_marker(BLOCK_PA_A, other), "the first 64 KiB page");
    map_large(LARGE_VA, BLOCK_PA_B + LARGE_OFF);
    tlbi(op, LARGE_VA + other, 1);
    check_reads(LARGE_VA + in, AP_ALL_RW, large_marker(BLOCK_PA_B, in),
                tlbi_name[op]);
    map_large(LARGE_VA, 0);
    tlbi(op, LARGE_VA + other, 1);
    check_read_faults(LARGE_VA + in, tlbi_name[op]);
}
#endif

/*
 * The largest guest pages: a 16 MiB supersection (short descriptors; 16
 * equal L1 entries) or a 1 GiB level-1 block (LPAE) of ASID 1 at HUGE_VA,
 * over RAM from HUGE_PA, which holds blocks A and B. Cached through two
 * of its pages, then unmapped (short descriptors: first remapped, as a
 * section to block B) with every by-VA flavour naming a third page.
 */
#ifndef LPAE
#define HUGE_VA         0x30000000u
#define HUGE_PA         BLOCK_PA_A              /* 16 MiB aligned */
#define SECT_SUPER      (1u << 18)

static void map_huge(uint32_t pa)
{
    for (unsigned i = 0; i < 16; i++) {
        l1[1][(HUGE_VA >> 20) + i] =
            pa ? pa | SECT_SUPER | SECT_AP_ALL_RW | SECT_NG | SECT_CB |
                 L1_SECTION : 0;
    }
}
#else
#define HUGE_VA         0x80000000u
#define HUGE_PA         RAM_BASE                /* 1 GiB aligned */

static void map_huge(uint32_t pa)
{
    l1[1][HUGE_VA >> 30] = pa ? pa | D_AF | D_SH_INNER | D_ATTR_NORMAL |
                                D_NG | pte_ap(AP_ALL_RW) | D_BLOCK : 0;
}
#endif

static void test_huge_page(enum tlbi op)
{
    const uint32_t a = HUGE_VA + (BLOCK_PA_A - HUGE_PA) + 0x5000;
    const uint32_t b = HUGE_VA + (BLOCK_PA_B - HUGE_PA) + 0x5000;
    const uint32_t other = HUGE_VA + (BLOCK_PA_A - HUGE_PA) + 0x900000;

    switch_to(1);
    map_huge(HUGE_PA);
    tlbi(TLBIALL, 0, 0);
    check_reads(a, AP_ALL_RW, block_marker(BLOCK_PA_A), "the huge page");
    check_reads(b, AP_ALL_RW, block_marker(BLOCK_PA_B), "the huge page");
#ifndef LPAE
    map_huge(0);
    map_block(1, a & ~0xfffffu, BLOCK_PA_B);
    tlbi(op, other, 1);
    check_reads(a, AP_ALL_RW, block_marker(BLOCK_PA_B), tlbi_name[op]);
    map_block(1, a & ~0xfffffu, 0);
    map_huge(HUGE_PA);
    tlbi(TLBIALL, 0, 0);
    check_reads(a, AP_ALL_RW, block_marker(BLOCK_PA_A), "the huge page");
#endif
    map_huge(0);
    tlbi(op, other, 1);
    check_read_faults(a, tlbi_name[op]);
    check_read_faults(b, tlbi_name[op]);
}

/*
 * Unaligned accesses across a page boundary (SCTLR.A is clear) whose
 * second page forbids them. Both pages are cached first, so with HSPT the
 * host fault comes from the second shadow page of an access that starts
 * in the first. The access must abort as on softmmu: a fault on the
 * second page, reported at its first byte, with the status of that fault
 * and nothing written (QEMU looks both pages up before it stores).
 */
#define FS_TRANSLATION_PAGE     0x7u    /* both formats: level 2 / 3 */
#define FS_PERMISSION_PAGE      0xfu
#define DFSR_WNR                (1u << 11)

static uint32_t fault_status(uint32_t dfsr)
{
#ifndef LPAE
    return (dfsr & 0xfu) | ((dfsr >> 6) & 0x10u);
#else
    return dfsr & 0x3fu;
#endif
}

static void check_crossing_abort(bool faulted, uint32_t va, uint32_t fs,
                                 bool write, const char *how)
{
    uint32_t cpu = cpu_index();

    check(faulted, "abort", how, 0, 1);
    if (faulted) {
        check_value(last_dfar[cpu], (va | 0xfffu) + 1, "DFAR", how);
        check_value(fault_status(last_dfsr[cpu]), fs, "fault status", how);
        check_value(!!(last_dfsr[cpu] & DFSR_WNR), write, "DFSR.WnR", how);
    }
}

static uint32_t read_priv_at(uint32_t va, bool *faulted)
{
    uint32_t before = aborts[cpu_index()], v = read_priv(va);

    *faulted = aborts[cpu_index()] != before;
    return v;
}

static uint32_t read_user_at(uint32_t va, bool *faulted)
{
    uint32_t before = aborts[cpu_index()], v = read_user(va);

    *faulted = aborts[cpu_index()] != before;
    return v;
}

static void test_page_crossing(void)
{
    const uint32_t va = USER_VA + 0xd0000, next = va + 0x1000;
    const uint32_t at = next - 2;      /* two bytes in each page */
    unsigned first = fresh_mapping(1, va, AP_ALL_RW), second = fresh_page();
    volatile uint32_t *tail = &pages[first][1023], *head = &pages[second][0];
    bool faulted;
    uint32_t v;

    (void)write_priv(next - 4, 0x11111111u);
    *head = marker(second);

    /* Read-only for all: a PL1 store faults, a PL1 load reads across. */
    map(1, next, second, AP_ALL_RO);
    tlbi(TLBIMVA, next, 1);
    warm(next, AP_ALL_RO);
    check_value(read_priv(at), (marker(second) << 16) | 0x1111u,
                "PL1 load across pages", "a read-only second page");
    check_crossing_abort(write_priv(at, 0x22222222u), at, FS_PERMISSION_PAGE,
                         true, "a PL1 store into a read-only page");
    check_value(*tail, 0x11111111u, "first page's last word",
                "a faulted store across pages");
    check_value(*head, marker(second), "second page's first word",
                "a faulted store across pages");

    /* PL1 only: PL0 loads and stores fault, PL1 stores go across. */
    map(1, next, second, AP_PRIV_RW);
    tlbi(TLBIMVA, next, 1);
    warm(next, AP_PRIV_RW);
    v = read_user_at(at, &faulted);
    check_crossing_abort(faulted, at, FS_PERMISSION_PAGE, false,
                         "a PL0 load from a PL1-only page");
    check_value(v, NO_VALUE, "PL0 load target register",
                "a faulted load across pages");
    check_crossing_abort(write_user(at, 0x33333333u), at, FS_PERMISSION_PAGE,
                         true, "a PL0 store into a PL1-only page");
    check(!write_priv(at, 0x44444444u), "PL1 store across pages",
          "a PL1-only second page", 1, 0);
    check_value(*tail, 0x44441111u, "first page's last word",
                "a PL1 store across pages");
    check_value(*head, (marker(second) & ~0xffffu) | 0x4444u,
                "second page's first word", "a PL1 store across pages");
    *head = marker(second);

    /* Unmapped: loads and stores fault with a translation fault. */
    unmap(1, next);
    tlbi(TLBIMVA, next, 1);
    v = read_priv_at(at, &faulted);
    check_crossing_abort(faulted, at, FS_TRANSLATION_PAGE, false,
                         "a PL1 load from an unmapped page");
    check_value(v, NO_VALUE, "PL1 load target register",
                "a faulted load across pages");
    check_crossing_abort(write_priv(at, 0x55555555u), at,
                         FS_TRANSLATION_PAGE, true,
                         "a PL1 store into an unmapped page");
    check_value(*tail, 0x44441111u, "first page's last word",
                "a faulted store across pages");
    unmap(1, va);
    tlbi(TLBIMVA, va, 1);
}

/*
 * SCTLR.M: with the MMU off, VA = PA, whatever the shadow holds for the
 * context. VA BLOCK_PA_A is mapped to block B (not identity) and read;
 * with the MMU off the same VA must read block A, and block B again once
 * the MMU is back on. The code runs identity mapped, so it keeps running.
 */
static void test_mmu_off(void)
{
    const uint32_t va = BLOCK_PA_A + 0x5000;

    switch_to(1);
    map_block(1, BLOCK_PA_A, BLOCK_PA_B);
    tlbi(TLBIALL, 0, 0);
    check_reads(va, AP_ALL_RW, block_marker(BLOCK_PA_B), "a block over RAM");
    sctlr_update(0, SCTLR_M);
    check_value(read_priv(va), block_marker(BLOCK_PA_A), "PL1 read",
                "SCTLR.M cleared");
    check_value(read_user(va), block_marker(BLOCK_PA_A), "PL0 read (LDRT)",
                "SCTLR.M cleared");
    sctlr_update(SCTLR_M, 0);
    check_reads(va, AP_ALL_RW, block_marker(BLOCK_PA_B), "SCTLR.M set again");
    map_block(1, BLOCK_PA_A, 0);
    tlbi(TLBIALL, 0, 0);
}

/*
 * A large page holding code is shadow-mapped page by page (the code page
 * must stay write-protected), and at a TLBIALL those pages are checked
 * against one fresh lookup of the block. Each must follow the block's new
 * output address and its new permissions, also after a TLBI of another
 * page of the block.
 */

static uint32_t call_block_code(void)
{
    uint32_t (*fn)(void) = (uint32_t (*)(void))(uintptr_t)(BLOCK_VA +
                                                           BLOCK_CODE_OFF);

    return fn();
}

/* Both blocks run their code once (block_markers_init() wrote it). */
static void block_by_pages_init(void)
{
    switch_to(1);
    map_block(1, BLOCK_VA, BLOCK_PA_A);
    tlbi(TLBIALL, 0, 0);
    check_value(call_block_code(), 1, "code in block A", "TLBIALL");
    map_block(1, BLOCK_VA, BLOCK_PA_B);
    tlbi(TLBIALL, 0, 0);
    check_value(call_block_code(), 2, "code in block B", "TLBIALL");
}

static void check_block_pages(uint32_t pa, const char *how)
{
    for (unsigned j = 0; j < 3; j++) {
        check_reads(BLOCK_VA + by_page_offs[j], AP_ALL_RW,
                    block_marker(pa) ^ by_page_offs[j], how);
    }
}

static void write_block_pages(uint32_t pa)
{
    for (unsigned j = 0; j < 3; j++) {
        check(!write_priv(BLOCK_VA + by_page_offs[j],
                          block_marker(pa) ^ by_page_offs[j]),
              "PL1 write", "a RW block holding code", 1, 0);
    }
}

/* BLOCK_VA as block PA, its pages written and read (mapped one by one). */
static void block_by_pages_fill(uint32_t pa, const char *how)
{
    map_block(1, BLOCK_VA, pa);
    tlbi(TLBIALL, 0, 0);
    write_block_pages(pa);
    check_block_pages(pa, how);
}

static void test_large_page_by_pages(void)
{
    block_by_pages_init();
    block_by_pages_fill(BLOCK_PA_A, "a block holding code");
    tlbi(TLBIALL, 0, 0);
    check_block_pages(BLOCK_PA_A, "TLBIALL (block unchanged)");

    map_block(1, BLOCK_VA, BLOCK_PA_B);
    tlbi(TLBIALL, 0, 0);
    check_block_pages(BLOCK_PA_B, "TLBIALL (block moved)");

    block_by_pages_fill(BLOCK_PA_B, "another block holding code");
    map_block_ap(1, BLOCK_VA, BLOCK_PA_B, AP_ALL_RO);
    tlbi(TLBIALL, 0, 0);
    for (unsigned j = 0; j < 3; j++) {
        check(write_priv(BLOCK_VA + by_page_offs[j], 0),
              "PL1 write fault (block RO)", "TLBIALL", 0, 1);
    }
    check_block_pages(BLOCK_PA_B, "TLBIALL (block RO)");

    /*
     * The pages mapped one by one came from one TLB entry: invalidating
     * another page of the block, which the shadow never mapped, drops them.
     */
    for (unsigned i = 0; i < 2; i++) {
        static const enum tlbi ops[] = { TLBIMVA, TLBIMVAAIS };
        uint32_t from = i ? BLOCK_PA_A : BLOCK_PA_B;
        uint32_t to = i ? BLOCK_PA_B : BLOCK_PA_A;

        block_by_pages_fill(from, "a block holding code, filled again");
        map_block(1, BLOCK_VA, to);
        tlbi(ops[i], BLOCK_VA + 0x80000, 1);
        check_block_pages(to, tlbi_name[ops[i]]);
    }

    map_block(1, BLOCK_VA, 0);
    tlbi(TLBIALL, 0, 0);
    for (unsigned j = 0; j < 3; j++) {
        check_read_faults(BLOCK_VA + by_page_offs[j], "TLBIALL (unmapped)");
    }
}

#ifndef LPAE
/*
 * DACR changes need no TLBI: no access faults, manager ignores AP, and
 * client checks it again.
 */
static void test_dacr(void)
{
    uint32_t va = USER_VA + 0x60000;
    unsigned page = fresh_mapping(1, va, AP_ALL_RO);
    uint32_t cpu = cpu_index(), before;

    set_dacr(dacr_with(USER_DOMAIN, 0));
    before = aborts[cpu];
    check_value(read_priv(va), NO_VALUE, "PL1 read", "DACR no access");
    check_value(aborts[cpu] - before, 1, "domain fault", "DACR no access");

    set_dacr(dacr_with(USER_DOMAIN, 3));
    check(!write_priv(va, marker(page)), "PL1 write to RO page",
          "DACR manager", 1, 0);
    check(!write_user(va, marker(page)), "PL0 write to RO page",
          "DACR manager", 1, 0);

    set_dacr(dacr_with(USER_DOMAIN, 1));
    check(write_priv(va, 0), "PL1 write fault", "DACR client again", 0, 1);
    check(write_user(va, 0), "PL0 write fault", "DACR client again", 0, 1);
    check_value(read_user(va), marker(page), "PL0 read", "DACR client again");
}
#endif

static void set_ttbcr(uint32_t ttbcr)
{
    CP15_WRITE(c2, 0, c0, 2, ttbcr);
    isb();
}

/*
 * Into the split (TTBR1 first: the code runs through it) and back to
 * TTBR0 only (TTBCR last). The writes change tables of the current
 * context: none needs a TLBI.
 */
#ifndef LPAE
#define TTBCR_SPLIT_1G      2u          /* N */
#define TTBCR_SPLIT_256M    4u
#define TTBCR_NO_TTBR0      (1u << 4)   /* PD0 */

static void ttbr_split_begin(void)
{
    CP15_WRITE(c2, 0, c0, 1, (uint32_t)(uintptr_t)l1[0]);      /* TTBR1 */
    isb();
    set_ttbcr(TTBCR_SPLIT_1G);
}

static void ttbr_split_end(void)
{
    set_ttbcr(0);
}
#else
#define TTBCR_SPLIT_1G      (TTBCR_EAE | 2u)    /* T0SZ: a level-2 TTBR0 */
#define TTBCR_SPLIT_256M    (TTBCR_EAE | 4u)
#define TTBCR_NO_TTBR0      (1u << 7)           /* EPD0 */

static void ttbr_split_begin(void)
{
    uint32_t lo = (uint32_t)(uintptr_t)l1[0];

    asm volatile("mcrr p15, 1, %0, %1, c2" :: "r"(lo), "r"(0) : "memory");
    isb();
    set_ttbcr(TTBCR_SPLIT_1G);
    /* TTBR0 of ASID 1 starts at level 2 now: its first GiB's table. */
    lo = (uint32_t)(uintptr_t)l2_low[1];
    asm volatile("mcrr p15, 0, %0, %1, c2" :: "r"(lo), "r"(1u << 16)
                 : "memory");
    isb();
}

static void ttbr_split_end(void)
{
    switch_to(1);
    set_ttbcr(TTBCR_EAE);
}
#endif

/*
 * TTBCR changes need no TLBI either. With the TTBR0/TTBR1 split at 1 GiB
 * (the code and RAM in the TTBR1 half, through the global-only table
 * l1[0]), disabling the TTBR0 walks (PD0, or EPD0 with LPAE) must make a
 * cached TTBR0 page fault at once, and enabling them again must show it
 * again. Moving the split to 256 MiB must translate the test window
 * through TTBR1, where it is not mapped.
 */
static void test_ttbcr(void)
{
    uint32_t va = USER_VA + 0xa0000;
    unsigned page = fresh_mapping(1, va, AP_ALL_RW);

    ttbr_split_begin();
    check_reads(va, AP_ALL_RW, marker(page), "TTBCR: split at 1 GiB");
    set_ttbcr(TTBCR_SPLIT_1G | TTBCR_NO_TTBR0);
    check_read_faults(va, "TTBCR: TTBR0 walks disabled");
    set_ttbcr(TTBCR_SPLIT_1G);
    check_reads(va, AP_ALL_RW, marker(page), "TTBCR: TTBR0 walks enabled");
    set_ttbcr(TTBCR_SPLIT_256M);
    check_read_faults(va, "TTBCR: split at 256 MiB");
    set_ttbcr(TTBCR_SPLIT_1G);
    check_reads(va, AP_ALL_RW, marker(page), "TTBCR: split at 1 GiB again");
    ttbr_split_end();
    check_reads(va, AP_ALL_RW, marker(page), "TTBCR: TTBR0 only");
}

/* PAN: a page PL0 may access is not accessible at PL1 with PAN set. */
static void test_pan(void)
{
    uint32_t va = USER_VA + 0x70000;
    unsigned page = fresh_mapping(1, va, AP_ALL_RW);
    uint32_t cpu = cpu_index(), before;

    (void)read_priv(va);
    before = aborts[cpu];
    check_value(read_pan(va), NO_VALUE, "PL1 read with PAN", "user page");
    check_value(aborts[cpu] - before, 1, "permission fault", "PAN");
    map(1, va, page, AP_PRIV_RW);
    tlbi(TLBIMVA, va, 1);
    check_value(read_pan(va), marker(page), "PL1 read with PAN",
                "TLBIMVA to a PL1-only page");
}

/* --- secondary vCPUs ---------------------------------------------------- */

static uint32_t remote(unsigned cpu, uint32_t cmd, uint32_t arg)
{
    Mailbox *mb = &mailbox[cpu];
    uint32_t seq = mb->seq + 1;

    mb->cmd = cmd;
    mb->arg = arg;
    dsb();
    mb->seq = seq;
    dsb();
    while (mb->done != seq) {
        spin_wait();
    }
    return mb->result;
}

static void secondary_loop(unsigned cpu)
{
    Mailbox *mb = &mailbox[cpu];
    uint32_t done = 0;

    mb->up = 1;
    dsb();
    for (;;) {
        while (mb->seq == done) {
            spin_wait();
        }
        done = mb->seq;
        switch (mb->cmd) {
        case CMD_SWITCH:
            switch_to(mb->arg);
            break;
        case CMD_READ:
            mb->result = read_priv(mb->arg);
            break;
        case CMD_READ_USER:
            mb->result = read_user(mb->arg);
            break;
        }
        dsb();
        mb->done = done;
    }
}

static const char *const remote_pl1_read[MAX_CPUS] = {
    "", "vCPU 1 PL1 read", "vCPU 2 PL1 read", "vCPU 3 PL1 read" };
static const char *const remote_pl0_read[MAX_CPUS] = {
    "", "vCPU 1 PL0 read", "vCPU 2 PL0 read", "vCPU 3 PL0 read" };

/*
 * Broadcast: every other vCPU caches VA (PL1 and PL0) in context ASID;
 * vCPU 0, in ASID 1, remaps it and issues the IS flavour once; each of
 * them must see the new page. With ASID 2, they run ASID 1 meanwhile, so
 * the stale copies sit in a context that is not current there.
 */
static void test_broadcast(enum tlbi op, uint32_t asid, uint32_t va)
{
    unsigned old = fresh_page(), new = fresh_page();
    bool global = (va & WINDOW_MASK) == GLOBAL_VA;

    switch_to(1);
    map(asid, va, old, AP_ALL_RW);
    tlbi(TLBIALLIS, 0, 0);
    for (unsigned c = 1; c < ncpus; c++) {
        remote(c, CMD_SWITCH, asid);
        check_value(remote(c, CMD_READ, va), marker(old), remote_pl1_read[c],
                    "the first mapping");
        check_value(remote(c, CMD_READ_USER, va), marker(old),
                    remote_pl0_read[c], "the first mapping");
        if (asid != 1) {
            remote(c, CMD_SWITCH, 1);
        }
    }
    map(asid, va, new, AP_ALL_RW);
    tlbi(op, va, global ? 1 : asid);
    for (unsigned c = 1; c < ncpus; c++) {
        remote(c, CMD_SWITCH, asid);
        check_value(remote(c, CMD_READ, va), marker(new), remote_pl1_read[c],
                    tlbi_name[op]);
        check_value(remote(c, CMD_READ_USER, va), marker(new),
                    remote_pl0_read[c], tlbi_name[op]);
        remote(c, CMD_SWITCH, 1);
    }
}

/* --- main ---------------------------------------------------------------- */

static void run_tests(void)
{
    static const enum tlbi local[] = { TLBIALL, TLBIMVA, TLBIASID, TLBIMVAA,
                                       TLBIALLIS, TLBIMVAIS, TLBIASIDIS,
                                       TLBIMVAAIS };
    static const enum tlbi by_va[] = { TLBIALL, TLBIMVA, TLBIMVAA,
                                       TLBIALLIS, TLBIMVAIS, TLBIMVAAIS };
    static const unsigned aps[] = { AP_ALL_RW, AP_USER_RO, AP_PRIV_RW };

    for (unsigned i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        for (unsigned a = 0; a < 3; a++) {
            test_local_remap(local[i], USER_VA + 0x1000 * (1 + a), aps[a]);
            test_other_context(local[i], USER_VA + 0x10000 + 0x1000 * a,
                               aps[a]);
            test_same_va_other_asid(local[i], USER_VA + 0x20000 + 0x1000 * a,
                                    aps[a], false);
            test_same_va_other_asid(local[i], USER_VA + 0x24000 + 0x1000 * a,
                                    aps[a], true);
        }
        test_unmap(local[i]);
        test_write_protect(local[i]);
        test_other_context_code(local[i]);
        test_same_context_code(local[i]);
    }
    block_markers_init();
    for (unsigned i = 0; i < sizeof(by_va) / sizeof(by_va[0]); i++) {
        test_global(by_va[i]);
        test_large_page(by_va[i]);
    }
    for (unsigned i = 0; i < sizeof(by_va) / sizeof(by_va[0]); i++) {
        test_huge_page(by_va[i]);
    }
#ifndef LPAE
    for (unsigned i = 0; i < sizeof(by_va) / sizeof(by_va[0]); i++) {
        test_large_page_64k(by_va[i]);
    }
#endif
    test_page_crossing();
    test_mmu_off();
    test_large_page_by_pages();
    test_ttbcr();
#ifndef LPAE
    test_dacr();
#endif
    if (have_pan) {
        test_pan();
    } else {
        put_str("PAN not implemented by this CPU: PAN view not tested\n");
    }
    if (ncpus > 1) {
        static const enum tlbi is[] = { TLBIALLIS, TLBIMVAIS, TLBIASIDIS,
                                        TLBIMVAAIS };

        for (unsigned i = 0; i < 4; i++) {
            test_broadcast(is[i], 1, USER_VA + 0x80000);
            test_broadcast(is[i], 2, USER_VA + 0x90000);
        }
        test_broadcast(TLBIMVAIS, 1, GLOBAL_VA + 0x8000);
        test_broadcast(TLBIMVAAIS, 1, GLOBAL_VA + 0x9000);
    } else {
        failures++;
        put_str("FAIL: vCPU 1 did not start (run with -smp 2 to 4)\n");
    }
}

extern char _start[];

/*
 * A reset whose shadow unmaps fail (check.py's reset-unmap-failure check)
 * leaves the shadow as the last boot had it, and from then on the vCPU
 * must not use it. So each boot ends with a block at STALE_VA mapped to
 * the other RAM block and cached, and each later boot reads STALE_VA
 * first of all (after turning the UART on), with the MMU off and before
 * any register write that switches shadow spaces: only the switch at the
 * vCPU's next cpu_exec() entry stands between that read and the stale
 * block. RAM outside the image, and .bss, survive a reset; .data is
 * loaded again.
 */
#define STALE_VA        (BLOCK_PA_A + 0x9000)
#define STALE_MARK_A    0x5a1e000au
#define STALE_MARK_B    0x5a1e000bu
static unsigned boots;

static void check_stale_block(void)
{
    if (boots++) {
        check_value(read_priv(STALE_VA), STALE_MARK_A,
                    "PL1 read with the MMU off", "a reset");
    }
}

static void leave_stale_block(void)
{
    switch_to(1);
    map_block(1, BLOCK_PA_A, BLOCK_PA_A);
    tlbi(TLBIALL, 0, 0);
    (void)write_priv(STALE_VA, STALE_MARK_A);
    map_block(1, BLOCK_PA_A, BLOCK_PA_B);
    tlbi(TLBIALL, 0, 0);
    (void)write_priv(STALE_VA, STALE_MARK_B);
    check_value(read_priv(STALE_VA), STALE_MARK_B, "PL1 read",
                "a block over RAM");
}

void cpu_main(uint32_t cpu);
void cpu_main(uint32_t cpu)
{
    uint32_t mmfr3;

    if (cpu != 0) {
        mmu_on();
        secondary_loop(cpu);
    }
    *UART_CR = UART_CR_ON;
    check_stale_block();
    build_tables();
    asm volatile("mrc p15, 0, %0, c0, c1, 7" : "=r"(mmfr3));
    have_pan = ((mmfr3 >> 16) & 0xf) != 0;
    mmu_on();
    /* vCPUs start in order; the first that PSCI refuses is not there. */
    while (ncpus < MAX_CPUS &&
           psci_call(PSCI_CPU_ON, ncpus, (uint32_t)(uintptr_t)_start, 0) == 0) {
        for (unsigned i = 0; i < 10000000 && !mailbox[ncpus].up; i++) {
            spin_wait();
        }
        if (!mailbox[ncpus].up) {
            break;
        }
        ncpus++;
    }
    put_str("TLBI test: " FORMAT ", 2 ASIDs, ");
    put_dec(ncpus);
    put_str(" vCPUs\n");
    run_tests();
    leave_stale_block();
    put_str("TLBI: ");
    put_dec(checks);
    put_str(" checks, ");
    put_dec(failures);
    put_str(" failed\n");
    put_str(failures ? "TLBI FAILED\n" : "TLBI OK\n");
    power_off();
}
