/* Freestanding stand-in: CMSIS-DSP's headers include <string.h>; the benchmarked kernels need
 * only these declarations (the firmware runtime defines them). */
#ifndef KP_BENCH_STRING_H
#define KP_BENCH_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
/* As a hosted build would: CMSIS-DSP reads unaligned words with memcpy, which -ffreestanding
 * would otherwise turn into calls. */
#define memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#endif
