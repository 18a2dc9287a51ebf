/*
 * kp_harness.h - bare-metal test harness for kpgen firmware under QEMU (Cortex-M).
 *
 * Freestanding C99: no libc, no newlib. Output and exit go through ARM semihosting
 * (QEMU must run with -semihosting-config enable=on). The harness provides the vector
 * table and reset handler; the firmware provides `int main(void)`, whose return value
 * becomes QEMU's exit status.
 *
 * Exit codes used by the harness itself (distinct from anything a test main returns
 * in the range 0..89):
 *   90  HardFault (including escalated faults on cores without configurable faults)
 *   91  MemManage fault
 *   92  BusFault
 *   93  UsageFault (undefined instruction, invalid state, unaligned/div-by-zero traps)
 *   94  any other exception: NMI, SecureFault, SVCall, DebugMon, PendSV, SysTick, IRQs
 *   95  stack overflow detected when main returned (the paint at the stack limit was overwritten)
 * On v7-M / v8-M Mainline the reset handler enables MemManage, BusFault and UsageFault so
 * that they are reported as themselves rather than escalated to HardFault.
 * A fault handler prints one line "kp: <kind> fault pc=0x... lr=0x... [cfsr=0x... hfsr=0x...]"
 * before exiting.
 */
#ifndef KP_HARNESS_H
#define KP_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define KP_EXIT_HARD_FAULT 90
#define KP_EXIT_MEM_FAULT 91
#define KP_EXIT_BUS_FAULT 92
#define KP_EXIT_USAGE_FAULT 93
#define KP_EXIT_OTHER_EXCEPTION 94
#define KP_EXIT_STACK_OVERFLOW 95

/* Value returned by kp_timer_ticks() when a region exceeds 2^32 ticks. */
#define KP_TIMER_OVERFLOW 0xFFFFFFFFu

/* Word written over unused stack so the high-water mark can be found. */
#define KP_STACK_PAINT 0xC5ACCE55u

/* Keeps a measured function a call where it is, neither moved, merged nor inlined: noipa
 * under gcc; clang lacks it, noinline is its nearest (and clang still drops a call to an
 * empty function, so the benchmark markers' bodies hold an empty asm). */
#if defined(__clang__)
#define KP_MEASURED __attribute__((noinline))
#else
#define KP_MEASURED __attribute__((noipa))
#endif

/* The firmware's entry point, called by the reset handler. */
int main(void);

/* ---- semihosting output and exit ---- */

/* Print a NUL-terminated string (SYS_WRITE0). */
void kp_puts(const char *s);
/* Print an unsigned decimal number (no newline). */
void kp_put_u32(uint32_t v);
/* Print a signed decimal number (no newline). */
void kp_put_i32(int32_t v);
/* Print "0x" followed by exactly eight lowercase hex digits (no newline). */
void kp_put_hex32(uint32_t v);
/* Stop the emulator; QEMU's process exit status becomes `code` (SYS_EXIT_EXTENDED). */
__attribute__((noreturn)) void kp_exit(int code);

/* ---- cost measurement: guest instructions via SysTick under QEMU -icount ---- */

/*
 * Start counting: SysTick on the processor clock, reload 0xFFFFFF, counter cleared.
 * Under `-icount shift=N,sleep=off` one SysTick tick is 2^N * f_cpu / 1e9 guest
 * instructions, exactly and repeatably.
 */
void kp_timer_start(void);
/*
 * Ticks elapsed since the last kp_timer_start() (SysTick counts down; handled here).
 * The counter is read as the first thing this function does. Returns
 * KP_TIMER_OVERFLOW beyond 2^32 ticks. Wraps of the 24-bit counter are counted by the SysTick
 * interrupt (kp_systick_handler), which adds about 5 instructions per 2^24 ticks.
 * The host converts ticks to instructions, subtracting the fixed cost of an empty
 * region (kp_timer_start(); kp_timer_ticks(); with nothing between).
 */
uint32_t kp_timer_ticks(void);

/* ---- stack measurement ---- */

/* Highest number of bytes of stack ever used, measured from the top of the stack
   (scans the paint from the stack limit upward). */
uint32_t kp_stack_high_water(void);
/* Re-paint the stack below the current stack pointer. To measure one call:
     kp_stack_repaint(); base = kp_stack_high_water(); f(); used = kp_stack_high_water() - base;
   (both helpers are leaf functions that use no stack of their own). */
void kp_stack_repaint(void);
/* Total bytes reserved for the stack by the linker script. */
uint32_t kp_stack_size(void);

/* ---- the few libc functions the compiler may emit calls to (weak definitions) ---- */

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif /* KP_HARNESS_H */
