/* Freestanding stand-in: CMSIS-DSP's headers include <math.h>; the benchmarked matrix-vector
 * kernels call no math function. */
#ifndef KP_BENCH_MATH_H
#define KP_BENCH_MATH_H
#endif
