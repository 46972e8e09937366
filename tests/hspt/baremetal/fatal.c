/*
 * qemu-hspt bare-metal tests: exception handlers for tests that expect no
 * exception (start.S calls them): report it and power off
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdint.h>

#include "bare.h"

void data_abort(uint32_t dfsr, uint32_t dfar);
void data_abort(uint32_t dfsr, uint32_t dfar)
{
    put_failure("data abort", "DFSR", dfsr, "DFAR", dfar);
    power_off();
}

void unexpected_exception(uint32_t lr, uint32_t cpsr);
void unexpected_exception(uint32_t lr, uint32_t cpsr)
{
    put_failure("unexpected exception", "lr", lr, "cpsr", cpsr);
    power_off();
}
