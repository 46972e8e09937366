/*
 * qemu-hspt bare-metal test: the guest side of the gdbstub watchpoint
 * check in tests/hspt/check.py
 *
 * vCPU 0 (MMU off: every address maps to itself) increments a word in a
 * loop until the debugger sets a flag in another page, then prints
 * "WATCH DONE" and powers off. While the loop runs, and so while the
 * word's page is shadow-mapped writable, the check sets a write and then
 * a read watchpoint on the word through QEMU's gdbstub: each must stop
 * the guest. Inserting a watchpoint flushes the page from the softmmu
 * TLB; a shadow page that outlived that flush would let the loop's
 * direct accesses run past the watchpoint.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdint.h>

#include "bare.h"

/* A page each; the check finds them with nm. */
volatile uint32_t watched __attribute__((aligned(4096)));
volatile uint32_t stop_flag __attribute__((aligned(4096)));

void cpu_main(uint32_t cpu);
void cpu_main(uint32_t cpu)
{
    if (cpu != 0) {
        return;
    }
    *UART_CR = UART_CR_ON;
    put_str("WATCH READY\n");
    while (!stop_flag) {
        watched++;
    }
    put_str("WATCH DONE\n");
    power_off();
}
