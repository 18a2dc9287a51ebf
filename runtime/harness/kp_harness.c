/*
 * kp_harness.c - vector table, reset handler, fault reporting, semihosting I/O,
 * SysTick instruction counting and stack painting for kpgen test firmware.
 * See kp_harness.h for the contract and the exit codes.
 *
 * Builds warning-free as C99 with -Wall -Wextra -Werror -pedantic -Wvla -Wdouble-promotion
 * for Cortex-M0/M3/M4F/M7/M33/M55 (soft and hard float).
 */
#include "kp_harness.h"

/* ---- symbols from the linker script (link.ld) ---- */
extern uint32_t kp_ld_data_load[];
extern uint32_t kp_ld_data_start[];
extern uint32_t kp_ld_data_end[];
extern uint32_t kp_ld_bss_start[];
extern uint32_t kp_ld_bss_end[];
extern uint32_t kp_ld_stack_limit[];
extern uint32_t kp_ld_stack_top[];

/* Architecture with the System Control Block fault registers (v7-M, v8-M Mainline). */
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) || \
    defined(__ARM_ARCH_8_1M_MAIN__)
#define KP_HAS_CFSR 1
#else
#define KP_HAS_CFSR 0
#endif

#define KP_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define KP_SYST_CSR KP_REG(0xE000E010u)
#define KP_SYST_RVR KP_REG(0xE000E014u)
#define KP_SYST_CVR KP_REG(0xE000E018u)
#define KP_SCB_SHCSR KP_REG(0xE000ED24u)
#define KP_SCB_CFSR KP_REG(0xE000ED28u)
#define KP_SCB_HFSR KP_REG(0xE000ED2Cu)
#define KP_SCB_MMFAR KP_REG(0xE000ED34u)
#define KP_SCB_BFAR KP_REG(0xE000ED38u)
#define KP_SCB_CPACR KP_REG(0xE000ED88u)

#define KP_SYSTICK_MAX 0x00FFFFFFu

/* ---- exception handlers ---- */

void kp_reset_handler(void);
void kp_nmi_handler(void);
void kp_hard_fault_handler(void);
void kp_mem_fault_handler(void);
void kp_bus_fault_handler(void);
void kp_usage_fault_handler(void);
void kp_default_handler(void);
void kp_systick_handler(void);
__attribute__((noreturn, used)) void kp_fault_report(const uint32_t *frame, uint32_t exc_return,
                                                     uint32_t code);

typedef void (*kp_handler)(void);

struct kp_vector_table {
    uint32_t *initial_sp;
    kp_handler handlers[15 + 32];
};

/* Exceptions 1..15 then 32 external interrupts (never enabled by the harness). */
__attribute__((section(".vectors"), used)) const struct kp_vector_table kp_vectors = {
    kp_ld_stack_top,
    {
        kp_reset_handler,       /*  1 Reset */
        kp_nmi_handler,         /*  2 NMI */
        kp_hard_fault_handler,  /*  3 HardFault */
        kp_mem_fault_handler,   /*  4 MemManage */
        kp_bus_fault_handler,   /*  5 BusFault */
        kp_usage_fault_handler, /*  6 UsageFault */
        kp_default_handler,     /*  7 SecureFault (v8-M) */
        kp_default_handler,     /*  8 reserved */
        kp_default_handler,     /*  9 reserved */
        kp_default_handler,     /* 10 reserved */
        kp_default_handler,     /* 11 SVCall */
        kp_default_handler,     /* 12 DebugMonitor */
        kp_default_handler,     /* 13 reserved */
        kp_default_handler,     /* 14 PendSV */
        kp_systick_handler,     /* 15 SysTick */
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
        kp_default_handler, kp_default_handler, kp_default_handler, kp_default_handler,
    },
};

static inline uint32_t *kp_current_sp(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* Paint [kp_ld_stack_limit, end) word by word. Volatile stores: never becomes a call. */
static inline void kp_paint(uint32_t *end)
{
    volatile uint32_t *p = kp_ld_stack_limit;
    while (p < end) {
        *p++ = KP_STACK_PAINT;
    }
}

void kp_reset_handler(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* Full access to CP10/CP11: the FPU and, on v8.1-M, MVE. Before any other code. */
    KP_SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
#if KP_HAS_CFSR
    /* Report MemManage, BusFault and UsageFault as themselves (not escalated). */
    KP_SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    {
        volatile uint32_t *dst = kp_ld_data_start;
        const volatile uint32_t *src = kp_ld_data_load;
        while (dst < kp_ld_data_end) {
            *dst++ = *src++;
        }
    }
    {
        volatile uint32_t *dst = kp_ld_bss_start;
        while (dst < kp_ld_bss_end) {
            *dst++ = 0u;
        }
    }
    kp_paint(kp_current_sp());
    {
        int rc = main();
        if (kp_ld_stack_limit[0] != KP_STACK_PAINT) {
            kp_puts("kp: stack overflow (paint at the stack limit overwritten)\n");
            kp_exit(KP_EXIT_STACK_OVERFLOW);
        }
        kp_exit(rc);
    }
}

/*
 * Fault entry stubs: pass the main stack pointer (the exception frame; the harness
 * never switches to the process stack), EXC_RETURN and the exit code to kp_fault_report.
 * Thumb-1 compatible so the same code serves v6-M.
 */
#define KP_FAULT_STUB(name, code)                                                                  \
    __attribute__((naked)) void name(void)                                                         \
    {                                                                                              \
        __asm__ volatile("mrs r0, msp\n\t"                                                         \
                         "mov r1, lr\n\t"                                                          \
                         "movs r2, #" #code "\n\t"                                                 \
                         "bl kp_fault_report\n\t");                                                \
    }

KP_FAULT_STUB(kp_hard_fault_handler, 90)
KP_FAULT_STUB(kp_mem_fault_handler, 91)
KP_FAULT_STUB(kp_bus_fault_handler, 92)
KP_FAULT_STUB(kp_usage_fault_handler, 93)
KP_FAULT_STUB(kp_nmi_handler, 94)
KP_FAULT_STUB(kp_default_handler, 94)

static const char *kp_fault_name(uint32_t code)
{
    switch (code) {
    case KP_EXIT_HARD_FAULT:
        return "hard fault";
    case KP_EXIT_MEM_FAULT:
        return "memmanage fault";
    case KP_EXIT_BUS_FAULT:
        return "bus fault";
    case KP_EXIT_USAGE_FAULT:
        return "usage fault";
    default:
        return "unexpected";
    }
}

void kp_fault_report(const uint32_t *frame, uint32_t exc_return, uint32_t code)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    kp_puts("kp: ");
    kp_puts(kp_fault_name(code));
    kp_puts(" exception=");
    kp_put_u32(ipsr & 0x1FFu);
    /* Only read the stacked frame when it lies inside the stack. */
    if (frame >= kp_ld_stack_limit && frame + 8 <= kp_ld_stack_top) {
        kp_puts(" pc=");
        kp_put_hex32(frame[6]);
        kp_puts(" lr=");
        kp_put_hex32(frame[5]);
    }
    kp_puts(" exc_return=");
    kp_put_hex32(exc_return);
#if KP_HAS_CFSR
    kp_puts(" cfsr=");
    kp_put_hex32(KP_SCB_CFSR);
    kp_puts(" hfsr=");
    kp_put_hex32(KP_SCB_HFSR);
    kp_puts(" mmfar=");
    kp_put_hex32(KP_SCB_MMFAR);
    kp_puts(" bfar=");
    kp_put_hex32(KP_SCB_BFAR);
#endif
    kp_puts("\n");
    kp_exit((int)code);
}

/* ---- semihosting ---- */

#define KP_SYS_WRITE0 0x04u
#define KP_SYS_EXIT_EXTENDED 0x20u
#define KP_ADP_STOPPED_APPLICATION_EXIT 0x20026u

static inline uint32_t kp_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void kp_puts(const char *s)
{
    (void)kp_semihost(KP_SYS_WRITE0, s);
}

void kp_put_u32(uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    kp_puts(&buf[i]);
}

void kp_put_i32(int32_t v)
{
    if (v < 0) {
        kp_puts("-");
        kp_put_u32(0u - (uint32_t)v);
    } else {
        kp_put_u32((uint32_t)v);
    }
}

void kp_put_hex32(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[11];
    int i;
    buf[0] = '0';
    buf[1] = 'x';
    for (i = 0; i < 8; ++i) {
        buf[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    }
    buf[10] = '\0';
    kp_puts(buf);
}

void kp_exit(int code)
{
    const uint32_t block[2] = {KP_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    for (;;) {
        (void)kp_semihost(KP_SYS_EXIT_EXTENDED, block);
    }
}

/* ---- SysTick instruction counting ---- */

/* Wraps of the 24-bit counter since kp_timer_start(): the SysTick interrupt counts them, so a
 * measured region may be longer than 2^24 ticks. Each wrap adds the handler's few instructions
 * (about 5 per 2^24 ticks, i.e. per 5.2 M instructions at 3.2 ticks per instruction). */
static volatile uint32_t kp_timer_wraps;

void kp_systick_handler(void)
{
    kp_timer_wraps = kp_timer_wraps + 1u;
}

void kp_timer_start(void)
{
    KP_SYST_CSR = 0u;
    KP_SYST_RVR = KP_SYSTICK_MAX;
    kp_timer_wraps = 0u;
    KP_SYST_CVR = 0u;    /* any write clears the counter (and COUNTFLAG) */
    KP_SYST_CSR = 7u;    /* ENABLE | TICKINT | CLKSOURCE=processor clock */
}

uint32_t kp_timer_ticks(void)
{
    uint32_t before = kp_timer_wraps;
    uint32_t now = KP_SYST_CVR;
    uint32_t wraps;
    KP_SYST_CSR = 0u; /* stop counting */
    wraps = kp_timer_wraps;
    /* A wrap counted after `now` was read (now still near 0) belongs to the next period. */
    if (wraps != before && now < KP_SYSTICK_MAX / 2u) {
        wraps = before;
    }
    if (wraps >= 256u) {
        return KP_TIMER_OVERFLOW; /* beyond 2^32 ticks */
    }
    return (wraps << 24) + (KP_SYSTICK_MAX - now);
}

/* ---- stack ---- */

uint32_t kp_stack_high_water(void)
{
    const volatile uint32_t *p = kp_ld_stack_limit;
    while (p < kp_ld_stack_top && *p == KP_STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)kp_ld_stack_top - (uintptr_t)p);
}

/*
 * In assembly, not C: the measurement needs a function that uses no stack at all, and on
 * v8.1-M GCC turns the C paint loop into a low-overhead loop (dls/le) counting in LR, saves
 * LR on the stack after reading SP (shrink-wrapping), and so paints over its own return
 * address. Thumb-1 only, so the same code serves v6-M.
 */
__attribute__((naked)) void kp_stack_repaint(void)
{
    /* GCC wraps basic asm in `.syntax divided`; this block is written in unified syntax. */
    __asm__ volatile(".syntax unified\n\t"
                     "ldr r0, 3f\n\t"
                     "ldr r1, 4f\n\t"
                     "mov r2, sp\n"
                     "1:\n\t"
                     "cmp r0, r2\n\t"
                     "bhs 2f\n\t"
                     "str r1, [r0]\n\t"
                     "adds r0, #4\n\t"
                     "b 1b\n"
                     "2:\n\t"
                     "bx lr\n\t"
                     ".p2align 2\n"
                     "3:\n\t"
                     ".word kp_ld_stack_limit\n"
                     "4:\n\t"
                     ".word 0xC5ACCE55\n\t");
}

uint32_t kp_stack_size(void)
{
    return (uint32_t)((uintptr_t)kp_ld_stack_top - (uintptr_t)kp_ld_stack_limit);
}

/* ---- libc subset ----
 * Weak, so a Rust staticlib's compiler_builtins (or any other) definition may win.
 * Loop-to-libcall conversion is disabled here: it would turn memset into a call to itself
 * (gcc: an optimize attribute; clang: no_builtin, which it knows instead). */

#if defined(__clang__)
#define KP_NO_LIBCALL __attribute__((weak, no_builtin))
#else
#define KP_NO_LIBCALL __attribute__((weak, optimize("no-tree-loop-distribute-patterns")))
#endif

/* A word type that may alias anything (word-at-a-time copies of byte buffers). */
typedef uint32_t __attribute__((may_alias)) kp_word;

KP_NO_LIBCALL void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0u) {
        while (n >= 4u) {
            *(kp_word *)(void *)d = *(const kp_word *)(const void *)s;
            d += 4;
            s += 4;
            n -= 4u;
        }
    }
    while (n-- != 0u) {
        *d++ = *s++;
    }
    return dst;
}

KP_NO_LIBCALL void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if ((uintptr_t)d <= (uintptr_t)s || (uintptr_t)d >= (uintptr_t)s + n) {
        while (n-- != 0u) {
            *d++ = *s++;
        }
    } else {
        d += n;
        s += n;
        while (n-- != 0u) {
            *--d = *--s;
        }
    }
    return dst;
}

KP_NO_LIBCALL void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    const unsigned char b = (unsigned char)c;
    if (((uintptr_t)d & 3u) == 0u) {
        const uint32_t w = (uint32_t)b * 0x01010101u;
        while (n >= 4u) {
            *(kp_word *)(void *)d = w;
            d += 4;
            n -= 4u;
        }
    }
    while (n-- != 0u) {
        *d++ = b;
    }
    return dst;
}

KP_NO_LIBCALL int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a;
    const unsigned char *y = b;
    for (; n != 0u; --n, ++x, ++y) {
        if (*x != *y) {
            return (int)*x - (int)*y;
        }
    }
    return 0;
}

#if defined(__ARM_EABI__) && defined(__clang__)
/* The Arm run-time ABI's names for the same, which clang calls where gcc calls memcpy (a C
 * library would provide them). Only in clang builds: elsewhere a Rust staticlib's
 * compiler_builtins keeps providing its own. The suffixed forms promise 4- or 8-byte
 * alignment, which the plain routines find by themselves; memset's operands come in another
 * order. */
#define KP_AEABI __attribute__((weak))
KP_AEABI void __aeabi_memcpy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
KP_AEABI void __aeabi_memcpy4(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
KP_AEABI void __aeabi_memcpy8(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
KP_AEABI void __aeabi_memmove(void *dst, const void *src, size_t n) { memmove(dst, src, n); }
KP_AEABI void __aeabi_memmove4(void *dst, const void *src, size_t n) { memmove(dst, src, n); }
KP_AEABI void __aeabi_memmove8(void *dst, const void *src, size_t n) { memmove(dst, src, n); }
KP_AEABI void __aeabi_memset(void *dst, size_t n, int c) { memset(dst, c, n); }
KP_AEABI void __aeabi_memset4(void *dst, size_t n, int c) { memset(dst, c, n); }
KP_AEABI void __aeabi_memset8(void *dst, size_t n, int c) { memset(dst, c, n); }
KP_AEABI void __aeabi_memclr(void *dst, size_t n) { memset(dst, 0, n); }
KP_AEABI void __aeabi_memclr4(void *dst, size_t n) { memset(dst, 0, n); }
KP_AEABI void __aeabi_memclr8(void *dst, size_t n) { memset(dst, 0, n); }
#endif
