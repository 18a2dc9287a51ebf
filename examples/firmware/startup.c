/* Minimal Cortex-M4F start-up for QEMU's mps2-an386 board: vector table, .data/.bss set-up,
 * FPU enable, main(), and ARM semihosting for output and the exit code. A vendor SDK provides
 * all of this; it is here so the example firmware builds with nothing but arm-none-eabi-gcc. */
#include <stddef.h>
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_write(const char *text)
{
    semihost(0x04, text); /* SYS_WRITE0 */
}

static void semihost_exit(int code)
{
    /* SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit: QEMU exits with `code`. */
    const uint32_t block[2] = {0x20026u, (uint32_t)code};
    semihost(0x20, block);
    for (;;) {
    }
}

void reset_handler(void)
{
    /* volatile: otherwise GCC turns these loops into memcpy/memset, and there is no libc. */
    const volatile uint32_t *src = &__data_load;
    for (volatile uint32_t *dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (volatile uint32_t *dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }
    /* CPACR: full access to CP10 and CP11, the FPU. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    semihost_exit(main());
}

/* The compiler may call memcpy and memset for any C (kpgen's code included), and a vendor SDK's
 * C library provides them. There is none here, so plain byte loops stand in; volatile keeps
 * GCC from turning them into calls to themselves. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    volatile unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    volatile unsigned char *d = dst;
    while (n--) {
        *d++ = (unsigned char)c;
    }
    return dst;
}

static void fault_handler(void)
{
    semihost_write("fault\n");
    semihost_exit(3);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top),
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
};
