/*
 * qemu-hspt bare-metal tests: what every test needs on -M virt (the PL011
 * console, PSCI)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HSPT_BARE_H
#define HSPT_BARE_H

#include <stdint.h>

#define UART_DR         ((volatile uint32_t *)0x09000000)
#define UART_CR         ((volatile uint32_t *)0x09000030)
#define UART_CR_ON      0x301u          /* UARTEN, TXE, RXE */
#define PSCI_CPU_ON     0x84000003u
#define PSCI_SYSTEM_OFF 0x84000008u

static inline void put_char(char c)
{
    *UART_DR = (uint32_t)c;
}

static inline void put_str(const char *s)
{
    while (*s) {
        put_char(*s++);
    }
}

static inline void put_hex(uint32_t v)
{
    put_str("0x");
    for (int i = 28; i >= 0; i -= 4) {
        put_char("0123456789abcdef"[(v >> i) & 0xf]);
    }
}

static inline void put_dec(uint32_t v)
{
    char buf[12];
    int n = 0;

    do {
        buf[n++] = '0' + v % 10;
        v /= 10;
    } while (v);
    while (n) {
        put_char(buf[--n]);
    }
}

/* "FAIL: WHAT, NAME1 V1 NAME2 V2" and a newline */
static inline void put_failure(const char *what, const char *name1,
                               uint32_t v1, const char *name2, uint32_t v2)
{
    put_str("FAIL: ");
    put_str(what);
    put_str(", ");
    put_str(name1);
    put_char(' ');
    put_hex(v1);
    put_char(' ');
    put_str(name2);
    put_char(' ');
    put_hex(v2);
    put_char('\n');
}

static inline uint32_t psci_call(uint32_t fn, uint32_t a1, uint32_t a2,
                                 uint32_t a3)
{
    register uint32_t r0 asm("r0") = fn;
    register uint32_t r1 asm("r1") = a1;
    register uint32_t r2 asm("r2") = a2;
    register uint32_t r3 asm("r3") = a3;

    asm volatile(".arch_extension virt\n\thvc #0"
                 : "+r"(r0) : "r"(r1), "r"(r2), "r"(r3) : "memory");
    return r0;
}

static inline void power_off(void)
{
    psci_call(PSCI_SYSTEM_OFF, 0, 0, 0);
    for (;;) {
        asm volatile("wfi");
    }
}

#endif
