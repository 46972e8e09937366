/*
 * qemu-hspt bare-metal tests: entry, stacks and exception vectors
 *
 * Every vCPU enters at _start in SVC mode with the MMU off: vCPU 0 from
 * reset, the others (up to 4) from PSCI CPU_ON. Data aborts are reported to C
 * (data_abort()) and the faulting instruction is skipped, so a test can
 * check that an access faulted. Any other exception is fatal.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

    .syntax unified
    .arm
    .section .text.start, "ax"
    .global _start
_start:
    mrc     p15, 0, r4, c0, c0, 5       @ MPIDR: Aff0 is the vCPU index
    and     r4, r4, #0xff
    ldr     r1, =stacks_top
    sub     r1, r1, r4, lsl #14         @ 16 KiB per vCPU
    cps     #0x17                       @ abort mode: the upper 4 KiB
    mov     sp, r1
    sub     r1, r1, #4096
    cps     #0x13                       @ SVC mode: the rest
    mov     sp, r1
    ldr     r1, =vectors
    mcr     p15, 0, r1, c12, c0, 0      @ VBAR
    isb
    mov     r0, r4
    bl      cpu_main
1:  wfi
    b       1b

    .balign 32
vectors:
    b       bad_exception               @ reset
    b       bad_exception               @ undefined instruction
    b       bad_exception               @ SVC
    b       bad_exception               @ prefetch abort
    b       dabt
    b       bad_exception               @ (hyp)
    b       bad_exception               @ IRQ
    b       bad_exception               @ FIQ

dabt:
    push    {r0-r3, r12, lr}
    mrc     p15, 0, r0, c5, c0, 0       @ DFSR
    mrc     p15, 0, r1, c6, c0, 0       @ DFAR
    bl      data_abort
    pop     {r0-r3, r12, lr}
    subs    pc, lr, #4                  @ resume after the faulting access

bad_exception:
    mov     r0, lr
    mrs     r1, cpsr
    bl      unexpected_exception
1:  b       1b

    .section .bss
    .balign 16384
stacks:
    .space  4 * 16384
stacks_top:
