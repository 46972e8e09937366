/*
 * qemu-hspt bare-metal test: the guest side of the migration check in
 * tests/hspt/check.py that catches stores missed by the dirty log
 *
 * vCPU 0 (MMU off) keeps a counter in a register and, in every round,
 * first checks that each of a few pages holds the counter's value, then
 * stores the next value into all of them. Nothing ever flushes their
 * translations, so whatever maps them at the start of a migration keeps
 * mapping them until its end. If the dirty log misses a store (a TLB
 * entry or shadow page left writable after the migration bitmap was
 * cleared), the destination resumes with a page that lags behind the
 * counter and the next round reports it. A character on the console
 * ends the loop: "MIGRATE OK" or "FAIL: ..." and power-off.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdint.h>

#include "bare.h"

#define UART_FR         ((volatile uint32_t *)0x09000018)
#define UART_FR_RXFE    (1u << 4)
#define NPAGES          16

static volatile uint32_t pages[NPAGES][1024] __attribute__((aligned(4096)));

void cpu_main(uint32_t cpu);
void cpu_main(uint32_t cpu)
{
    uint32_t counter = 0;

    if (cpu != 0) {
        return;
    }
    *UART_CR = UART_CR_ON;
    put_str("MIGRATE READY\n");
    for (;;) {
        for (unsigned i = 0; i < NPAGES; i++) {
            uint32_t got = pages[i][0];

            if (got != counter) {
                put_failure("a page lags behind the counter", "page", i,
                            "value", got);
                put_str("counter ");
                put_hex(counter);
                put_str("\n");
                power_off();
            }
        }
        counter++;
        for (unsigned i = 0; i < NPAGES; i++) {
            pages[i][0] = counter;
        }
        if ((counter & 1023) == 0 && !(*UART_FR & UART_FR_RXFE)) {
            break;
        }
    }
    put_str("MIGRATE OK ");
    put_dec(counter);
    put_str(" rounds\n");
    power_off();
}
