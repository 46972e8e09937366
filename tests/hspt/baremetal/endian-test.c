/*
 * qemu-hspt bare-metal test: big-endian data accesses (SETEND BE)
 *
 * vCPU 0 (MMU off: every address maps to itself) fills a page byte by
 * byte, then loads and stores halfwords, words, doublewords and an
 * exclusive word with CPSR.E set, as a BE8 guest's code does, and checks
 * every value against the bytes. The page is shadow-mapped from its first
 * store on, so with hspt=on all but the first round take the direct path,
 * whose x86 code must swap bytes (movbe or bswap) as the softmmu fast path
 * does. Prints "ENDIAN PASS", or a FAIL line for each wrong value.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdbool.h>
#include <stdint.h>

#include "bare.h"

#define ROUNDS 4

static volatile uint8_t buf[4096] __attribute__((aligned(4096)));

/* What be_round() reads, in the order it stores them to OUT. */
enum { R_LDRH, R_LDRSH, R_LDR, R_LDRD_LO, R_LDRD_HI, R_LDREX, R_STREX,
       R_COUNT };

/*
 * be_round(base, out), with CPSR.E set: read from BASE + 0x10
 * (halfword), 0x12 (signed halfword), 0x20 (word), 0x40 (doubleword),
 * 0x60 (exclusive word); write 0x11223344 at 0x80, 0xa1b2 at 0x90,
 * 0x01020304 and 0x05060708 at 0x98 (doubleword) and, exclusively,
 * 0xcafef00d at 0x60. Little-endian again before the results go to OUT.
 */
void be_round(volatile uint8_t *base, uint32_t *out);
asm(".text\n"
    ".global be_round\n"
    "be_round:\n\t"
    "push   {r4-r11}\n\t"
    "setend be\n\t"
    "ldrh   r2, [r0, #0x10]\n\t"
    "ldrsh  r3, [r0, #0x12]\n\t"
    "ldr    r4, [r0, #0x20]\n\t"
    "ldrd   r6, r7, [r0, #0x40]\n\t"
    "add    r5, r0, #0x60\n\t"
    "ldrex  r8, [r5]\n\t"
    "movw   r10, #0xf00d\n\t"
    "movt   r10, #0xcafe\n\t"
    "strex  r9, r10, [r5]\n\t"
    "movw   r10, #0x3344\n\t"
    "movt   r10, #0x1122\n\t"
    "str    r10, [r0, #0x80]\n\t"
    "movw   r10, #0xa1b2\n\t"
    "strh   r10, [r0, #0x90]\n\t"
    "movw   r10, #0x0304\n\t"
    "movt   r10, #0x0102\n\t"
    "movw   r11, #0x0708\n\t"
    "movt   r11, #0x0506\n\t"
    "strd   r10, r11, [r0, #0x98]\n\t"
    "setend le\n\t"
    "str    r2, [r1, #0]\n\t"
    "str    r3, [r1, #4]\n\t"
    "str    r4, [r1, #8]\n\t"
    "str    r6, [r1, #12]\n\t"
    "str    r7, [r1, #16]\n\t"
    "str    r8, [r1, #20]\n\t"
    "str    r9, [r1, #24]\n\t"
    "pop    {r4-r11}\n\t"
    "bx     lr\n");

static uint8_t pattern(unsigned i, unsigned round)
{
    return (uint8_t)(i * 7 + 3 + round * 0x51);
}

static uint32_t be_bytes(unsigned off, unsigned n)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < n; i++) {
        v = (v << 8) | buf[off + i];
    }
    return v;
}

static unsigned expect(const char *what, uint32_t got, uint32_t want)
{
    if (got == want) {
        return 0;
    }
    put_failure(what, "got", got, "want", want);
    return 1;
}

void cpu_main(uint32_t cpu);
void cpu_main(uint32_t cpu)
{
    static const uint8_t stored[] = {
        [0x80] = 0x11, 0x22, 0x33, 0x44,
        [0x90] = 0xa1, 0xb2,
        [0x98] = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    };
    unsigned failures = 0;

    if (cpu != 0) {
        return;
    }
    *UART_CR = UART_CR_ON;
    for (unsigned round = 0; round < ROUNDS; round++) {
        uint32_t out[R_COUNT];
        uint32_t sh, ex;

        for (unsigned i = 0; i < 0x100; i++) {
            buf[i] = pattern(i, round);
        }
        sh = be_bytes(0x12, 2);
        sh = (sh ^ 0x8000u) - 0x8000u;      /* sign-extend 16 bits */
        ex = be_bytes(0x60, 4);
        be_round(buf, out);
        failures += expect("ldrh", out[R_LDRH], be_bytes(0x10, 2));
        failures += expect("ldrsh", out[R_LDRSH], sh);
        failures += expect("ldr", out[R_LDR], be_bytes(0x20, 4));
        failures += expect("ldrd, first word", out[R_LDRD_LO],
                           be_bytes(0x40, 4));
        failures += expect("ldrd, second word", out[R_LDRD_HI],
                           be_bytes(0x44, 4));
        failures += expect("ldrex", out[R_LDREX], ex);
        failures += expect("strex status", out[R_STREX], 0);
        failures += expect("strex", be_bytes(0x60, 4), 0xcafef00du);
        for (unsigned i = 0x80; i < sizeof(stored); i++) {
            /* be_round() leaves the gaps between its stores alone. */
            bool gap = (i >= 0x84 && i < 0x90) || (i >= 0x92 && i < 0x98);
            uint8_t want = gap ? pattern(i, round) : stored[i];

            failures += expect("byte after big-endian stores", buf[i], want);
        }
    }
    put_str(failures ? "ENDIAN FAIL\n" : "ENDIAN PASS\n");
    power_off();
}
