/* Minimal stand-in for CMSIS-Core's cmsis_compiler.h, enough to compile CMSIS-DSP's matrix-vector
 * kernels as benchmark baselines (CMSIS-Core ships in no reachable registry). Each intrinsic maps to
 * the ACLE intrinsic of the same instruction, or to plain C where the core lacks it. */
#ifndef KP_BENCH_CMSIS_COMPILER_H
#define KP_BENCH_CMSIS_COMPILER_H
#include <stdint.h>
#if defined(__arm__)
#include <arm_acle.h>
#endif
#define __ASM __asm
#define __INLINE inline
#define __STATIC_INLINE static inline
#define __STATIC_FORCEINLINE static inline __attribute__((always_inline))
#define __ALIGNED(x) __attribute__((aligned(x)))
#define __PACKED __attribute__((packed))
#define __RESTRICT __restrict
#define __SIMD32_TYPE int32_t
#define __CLZ(x) ((uint8_t)((x) == 0u ? 32u : (uint32_t)__builtin_clz(x)))
#define __ROR(x, n) ((uint32_t)(((uint32_t)(x) >> ((n) & 31u)) | ((uint32_t)(x) << ((32u - ((n) & 31u)) & 31u))))
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define __SSAT(x, n) __ssat((x), (n))
#define __USAT(x, n) __usat((x), (n))
#else
static inline int32_t kp_bench_ssat(int32_t x, uint32_t n)
{
    const int32_t hi = (int32_t)((1u << (n - 1u)) - 1u);
    const int32_t lo = -hi - 1;
    return x > hi ? hi : (x < lo ? lo : x);
}
static inline uint32_t kp_bench_usat(int32_t x, uint32_t n)
{
    const int32_t hi = (int32_t)((1u << n) - 1u);
    return (uint32_t)(x > hi ? hi : (x < 0 ? 0 : x));
}
#define __SSAT(x, n) kp_bench_ssat((x), (n))
#define __USAT(x, n) kp_bench_usat((x), (n))
#endif
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define __SMLAD(x, y, a) ((uint32_t)__smlad((int16x2_t)(x), (int16x2_t)(y), (int32_t)(a)))
#define __SMLADX(x, y, a) ((uint32_t)__smladx((int16x2_t)(x), (int16x2_t)(y), (int32_t)(a)))
#define __SMLALD(x, y, a) ((uint64_t)__smlald((int16x2_t)(x), (int16x2_t)(y), (int64_t)(a)))
#define __SMLALDX(x, y, a) ((uint64_t)__smlaldx((int16x2_t)(x), (int16x2_t)(y), (int64_t)(a)))
#define __SMUAD(x, y) ((uint32_t)__smuad((int16x2_t)(x), (int16x2_t)(y)))
#define __SMUADX(x, y) ((uint32_t)__smuadx((int16x2_t)(x), (int16x2_t)(y)))
#define __SMUSD(x, y) ((uint32_t)__smusd((int16x2_t)(x), (int16x2_t)(y)))
#define __SMUSDX(x, y) ((uint32_t)__smusdx((int16x2_t)(x), (int16x2_t)(y)))
#define __SMLSDX(x, y, a) ((uint32_t)__smlsdx((int16x2_t)(x), (int16x2_t)(y), (int32_t)(a)))
#define __SXTB16(x) ((uint32_t)__sxtb16((int8x4_t)(x)))
#define __QADD(x, y) __qadd((x), (y))
#define __QSUB(x, y) __qsub((x), (y))
#define __QADD16(x, y) ((uint32_t)__qadd16((int16x2_t)(x), (int16x2_t)(y)))
#define __QSUB16(x, y) ((uint32_t)__qsub16((int16x2_t)(x), (int16x2_t)(y)))
#define __QADD8(x, y) ((uint32_t)__qadd8((int8x4_t)(x), (int8x4_t)(y)))
#define __QSUB8(x, y) ((uint32_t)__qsub8((int8x4_t)(x), (int8x4_t)(y)))
#define __QASX(x, y) ((uint32_t)__qasx((int16x2_t)(x), (int16x2_t)(y)))
#define __QSAX(x, y) ((uint32_t)__qsax((int16x2_t)(x), (int16x2_t)(y)))
#define __SHADD16(x, y) ((uint32_t)__shadd16((int16x2_t)(x), (int16x2_t)(y)))
#define __SHSUB16(x, y) ((uint32_t)__shsub16((int16x2_t)(x), (int16x2_t)(y)))
#define __SHASX(x, y) ((uint32_t)__shasx((int16x2_t)(x), (int16x2_t)(y)))
#define __SHSAX(x, y) ((uint32_t)__shsax((int16x2_t)(x), (int16x2_t)(y)))
#define __SMMLA(x, y, a) __smmla((x), (y), (a))
#define __PKHBT(x, y, s) ((uint32_t)(((uint32_t)(x) & 0xFFFFu) | (((uint32_t)(y) << (s)) & 0xFFFF0000u)))
#define __PKHTB(x, y, s) ((uint32_t)(((uint32_t)(x) & 0xFFFF0000u) | (((uint32_t)(y) >> (s)) & 0xFFFFu)))
#endif
#endif
