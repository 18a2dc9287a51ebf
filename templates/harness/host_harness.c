/* Host stand-in for kp_harness.c: the same output functions over stdio, so the conformance
 * firmware's main.c also runs natively (costs read 0 there: they are measured only in QEMU). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kp_harness.h"

void kp_puts(const char *s)
{
    fputs(s, stdout);
}

void kp_put_u32(uint32_t v)
{
    printf("%lu", (unsigned long)v);
}

void kp_put_i32(int32_t v)
{
    printf("%ld", (long)v);
}

void kp_put_hex32(uint32_t v)
{
    printf("0x%08lx", (unsigned long)v);
}

void kp_exit(int code)
{
    fflush(stdout);
    exit(code);
}

void kp_timer_start(void)
{
}

uint32_t kp_timer_ticks(void)
{
    return 0;
}

uint32_t kp_stack_high_water(void)
{
    return 0;
}

void kp_stack_repaint(void)
{
}

uint32_t kp_stack_size(void)
{
    return 0;
}
